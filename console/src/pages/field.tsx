// A labelled input, with its hint tied to it for screen readers.
export function Field(props: {
  name: string;
  label: string;
  type?: string;
  autocomplete?: string;
  hint?: string;
  placeholder?: string;
  minLength?: number;
  inputMode?: "numeric";
  pattern?: string;
}) {
  const id = `field-${props.name}`;
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      <input
        id={id}
        name={props.name}
        type={props.type ?? "text"}
        autoComplete={props.autocomplete}
        placeholder={props.placeholder}
        minLength={props.minLength}
        inputMode={props.inputMode}
        pattern={props.pattern}
        aria-describedby={props.hint ? `${id}-hint` : undefined}
        required
      />
      {props.hint && (
        <small id={`${id}-hint`} class="hint">
          {props.hint}
        </small>
      )}
    </div>
  );
}
