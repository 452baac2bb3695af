// One figure with its label, as the home and points pages show them.
export function Tile({ label, value }: { label: string; value: string }) {
  return (
    <div class="tile">
      <span class="label">{label}</span>
      <span class="value">{value}</span>
    </div>
  );
}
