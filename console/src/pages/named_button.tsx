// A button whose visible word ("수정") is completed for screen readers by what it
// acts on ("수정 01012345678"), so no two buttons of a table share a name.
export function NamedButton(props: {
  label: string;
  name: string;
  kind?: "secondary" | "danger" | "link";
  type?: "button" | "submit";
  disabled?: boolean;
  onClick?: () => void;
}) {
  return (
    <button type={props.type ?? "button"} class={props.kind} disabled={props.disabled} onClick={props.onClick}>
      {props.label}
      <span class="visually-hidden"> {props.name}</span>
    </button>
  );
}
