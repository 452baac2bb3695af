// Bar charts drawn by Chart.js (only the parts a bar chart needs are registered, so
// the bundle carries no more). A canvas says nothing to a screen reader: each chart
// is an image named by its title, and its numbers are also a table beside it.
import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, Tooltip } from "chart.js";
import { useEffect, useRef } from "preact/hooks";
import { numbers } from "../format";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

const COLOURS = ["#0b57d0", "#146c2e", "#b3261e", "#8a5a00", "#6b3fa0", "#00696b"];

/** Series of numbers over the same labels, e.g. target and actual share per carrier. */
export type Series = { name: string; values: number[] };

export function BarChart(props: {
  title: string;
  counts?: Record<string, number>;
  labels?: string[];
  series?: Series[];
  label?: (key: string) => string;
  percent?: boolean;
}) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const keys = props.labels ?? Object.keys(props.counts ?? {});
  const series: Series[] =
    props.series ?? [{ name: props.title, values: keys.map((key) => props.counts?.[key] ?? 0) }];
  const label = props.label ?? ((key: string) => key);
  const shown = keys.map(label);
  const data = JSON.stringify([shown, series]);

  useEffect(() => {
    if (!canvas.current) return;
    const chart = new Chart(canvas.current, {
      type: "bar",
      data: {
        labels: shown,
        datasets: series.map((each, index) => ({
          label: each.name,
          data: each.values,
          backgroundColor: COLOURS[index % COLOURS.length],
        })),
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: { legend: { display: series.length > 1 } },
        scales: { y: { beginAtZero: true, ...(props.percent ? { max: 100 } : { ticks: { precision: 0 } }) } },
      },
    });
    return () => chart.destroy();
  }, [data]);

  const number = numbers();
  const format = (value: number) => (props.percent ? `${value.toFixed(1)}%` : number.format(value));
  return (
    <figure class="chart">
      <figcaption>{props.title}</figcaption>
      <div class="chart-canvas">
        <canvas ref={canvas} role="img" aria-label={props.title} />
      </div>
      <table class="chart-numbers">
        <caption class="visually-hidden">{props.title}</caption>
        <thead>
          <tr>
            <th scope="col">
              <span class="visually-hidden">{props.title}</span>
            </th>
            {series.map((each) => (
              <th scope="col" key={each.name}>
                {each.name}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {shown.map((name, row) => (
            <tr key={name}>
              <th scope="row">{name}</th>
              {series.map((each) => (
                <td key={each.name}>{format(each.values[row] ?? 0)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}
