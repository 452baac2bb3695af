// Routing: per channel, each carrier's weight with a live preview of the next 20
// messages' carriers (POST /v1/routing/{channel}/preview, from where the counter
// stands), the failover order, and the target share against what routing did over
// the last 24 hours (GET /v1/routing/report), charted.
import { useEffect, useState } from "preact/hooks";
import { api, messageOf, type Schemas } from "../api/client";
import { t, type Word } from "../i18n";
import { BarChart } from "./chart";
import { Messages } from "./messages";
import { NamedButton } from "./named_button";

type Channel = Schemas["Channel"];

function share(counts: Record<string, number>, key: string): number {
  const total = Object.values(counts).reduce((sum, count) => sum + count, 0);
  return total ? (100 * (counts[key] ?? 0)) / total : 0;
}

function ChannelRouting({
  channel,
  routing,
  report,
  onSaved,
}: {
  channel: Channel;
  routing: Schemas["ChannelRouting"];
  report: Schemas["ChannelReport"] | undefined;
  onSaved: (message: string) => void;
}) {
  const carriers = routing.failover.length ? routing.failover : Object.keys(routing.weights ?? {});
  const [weights, setWeights] = useState<Record<string, number>>(() =>
    Object.fromEntries(carriers.map((carrier) => [carrier, routing.weights?.[carrier] ?? 0])),
  );
  const [failover, setFailover] = useState<string[]>(routing.failover);
  const [preview, setPreview] = useState<Schemas["RoutingPreview"] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const asked = JSON.stringify({ weights, failover });

  useEffect(() => {
    const timer = setTimeout(async () => {
      const { data, error } = await api.POST("/v1/routing/{channel}/preview", {
        params: { path: { channel } },
        body: { weights, failover },
      });
      setPreview(data ?? null);
      setProblem(data ? null : messageOf(error));
    }, 200);
    return () => clearTimeout(timer);
  }, [asked]);

  async function save(event: Event) {
    event.preventDefault();
    const { error } = await api.PUT("/v1/routing/{channel}", {
      params: { path: { channel } },
      body: { weights, failover },
    });
    if (error) return setProblem(messageOf(error));
    onSaved(t("routingSaved", { channel: t(`channel_${channel}` as Word) }));
  }

  function move(index: number, by: number) {
    const order = [...failover];
    const [carrier] = order.splice(index, 1);
    order.splice(index + by, 0, carrier!);
    setFailover(order);
  }

  const total = Object.values(weights).reduce((sum, weight) => sum + weight, 0);
  const counts = Object.fromEntries(carriers.map((carrier) => [carrier, preview?.next.filter((next) => next === carrier).length ?? 0]));
  const name = t(`channel_${channel}` as Word);

  return (
    <section class="card" aria-labelledby={`routing-${channel}`}>
      <h2 id={`routing-${channel}`}>{name}</h2>
      <form onSubmit={save}>
        <fieldset>
          <legend>{t("weights")}</legend>
          <div class="inline">
            {carriers.map((carrier) => (
              <span key={carrier} class="weight">
                <label for={`weight-${channel}-${carrier}`}>{carrier.toUpperCase()}</label>
                <input
                  id={`weight-${channel}-${carrier}`}
                  type="number"
                  min={0}
                  max={10000}
                  value={weights[carrier]}
                  onInput={(event) =>
                    setWeights((current) => ({ ...current, [carrier]: Math.max(0, Number(event.currentTarget.value) || 0) }))
                  }
                />
                <small class="hint">{total ? `${((100 * (weights[carrier] ?? 0)) / total).toFixed(0)}%` : ""}</small>
              </span>
            ))}
          </div>
        </fieldset>
        <div aria-live="polite">
          {problem && <p class="error">{problem}</p>}
          {preview && !problem && (
            <>
              <h3 id={`next-${channel}`}>{t("nextTwenty")}</h3>
              <ol class="next-carriers" aria-labelledby={`next-${channel}`} data-testid={`preview-${channel}`}>
                {preview.next.map((carrier, index) => (
                  <li key={index} class={`carrier-${carrier}`}>
                    {carrier.toUpperCase()}
                  </li>
                ))}
              </ol>
              <p class="hint" data-testid={`preview-counts-${channel}`}>
                {carriers.map((carrier) => `${carrier.toUpperCase()} ${counts[carrier]}`).join(" · ")}
              </p>
            </>
          )}
        </div>
        <fieldset>
          <legend>{t("failoverOrder")}</legend>
          <ol class="failover">
            {failover.map((carrier, index) => (
              <li key={carrier}>
                {carrier.toUpperCase()}{" "}
                <NamedButton label={t("moveUp")} name={carrier} kind="link" disabled={index === 0} onClick={() => move(index, -1)} />
                <NamedButton label={t("moveDown")} name={carrier} kind="link" disabled={index === failover.length - 1} onClick={() => move(index, 1)} />
              </li>
            ))}
          </ol>
        </fieldset>
        <button type="submit">{t("saveRouting", { channel: name })}</button>
      </form>
      {report && (
        <BarChart
          title={t("targetVsActual")}
          labels={carriers}
          label={(carrier) => carrier.toUpperCase()}
          percent
          series={[
            { name: t("target"), values: carriers.map((carrier) => share(report.target ?? {}, carrier)) },
            { name: t("firstChoice"), values: carriers.map((carrier) => share(report.first_choice, carrier)) },
            { name: t("deliveredShare"), values: carriers.map((carrier) => share(report.delivered, carrier)) },
          ]}
        />
      )}
    </section>
  );
}

export function Routing() {
  const [routing, setRouting] = useState<Record<string, Schemas["ChannelRouting"]> | null>(null);
  const [report, setReport] = useState<Schemas["RoutingReport"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  async function load() {
    const [current, done] = await Promise.all([api.GET("/v1/routing"), api.GET("/v1/routing/report")]);
    if (current.data) setRouting(current.data);
    else setError(messageOf(current.error));
    setReport(done.data ?? null);
  }
  useEffect(() => {
    load();
  }, []);

  if (!routing) return <p>{t("loading")}</p>;
  return (
    <>
      <h1>{t("routing")}</h1>
      <p class="hint">{t("routingHelp")}</p>
      <Messages error={error} notice={notice} />
      {(["sms", "alimtalk"] as const).map((channel) =>
        routing[channel] ? (
          <ChannelRouting
            key={channel}
            channel={channel}
            routing={routing[channel]!}
            report={report?.channels[channel]}
            onSaved={(message) => {
              setNotice(message);
              load();
            }}
          />
        ) : null,
      )}
    </>
  );
}
