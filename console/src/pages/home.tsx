// Home: today's sends and their success rate, the points, each carrier's health and
// the most recent requests — four calls to the same API every client uses.
import { useEffect, useState } from "preact/hooks";
import { api, messageOf, type Schemas } from "../api/client";
import { numbers, times } from "../format";
import { t, type Word } from "../i18n";
import { Tile } from "./tile";

type Loaded = {
  stats: Schemas["StatisticsView"];
  points: Schemas["Account"];
  carriers: Schemas["CarrierList"];
  requests: Schemas["RequestPage"];
};

/** Midnight today in Korea, as RFC 3339 (what "today" means to the customer). */
function startOfKoreanDay(now = Date.now()): string {
  const nine = 9 * 3_600_000;
  const day = 86_400_000;
  return new Date(Math.floor((now + nine) / day) * day - nine).toISOString();
}

export function Home({ session }: { session: Schemas["SessionView"] }) {
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    Promise.all([
      api.GET("/v1/stats", { params: { query: { since: startOfKoreanDay(), bucket: "hour" } } }),
      api.GET("/v1/points"),
      api.GET("/v1/carriers"),
      api.GET("/v1/requests", { params: { query: { limit: 10 } } }),
    ]).then(([stats, points, carriers, requests]) => {
      const failed = [stats, points, carriers, requests].find((answer) => answer.error);
      if (failed) return setError(messageOf(failed.error));
      setLoaded({
        stats: stats.data!,
        points: points.data!,
        carriers: carriers.data!,
        requests: requests.data!,
      });
    });
  }, [session.customer.id]);

  if (error) {
    return (
      <p class="error" role="alert">
        {error}
      </p>
    );
  }
  if (!loaded) return <p>{t("loading")}</p>;

  const totals = loaded.stats.carriers.reduce(
    (sum, carrier) => ({
      first: sum.first + carrier.first_choice,
      delivered: sum.delivered + carrier.delivered,
      failed: sum.failed + carrier.failed + carrier.undeliverable + carrier.expired,
    }),
    { first: 0, delivered: 0, failed: 0 },
  );
  const finished = totals.delivered + totals.failed;
  const rate = finished === 0 ? "–" : `${((100 * totals.delivered) / finished).toFixed(1)}%`;
  const number = numbers();
  const time = times();

  return (
    <>
      <h1>{session.customer.name}</h1>
      <section class="tiles" aria-label={t("home")}>
        <Tile label={t("todaySends")} value={number.format(totals.first)} />
        <Tile label={t("successRate")} value={rate} />
        <Tile label={t("points")} value={number.format(loaded.points.balance)} />
      </section>
      <section class="card">
        <h2>{t("carriers")}</h2>
        <ul class="carriers">
          {loaded.carriers.items.map((carrier) => (
            <li key={carrier.id} class={`circuit-${carrier.circuit}`}>
              <strong>{carrier.id.toUpperCase()}</strong> ({carrier.channel}){" "}
              {t(`circuit_${carrier.circuit}` as Word)}
            </li>
          ))}
        </ul>
      </section>
      <section class="card">
        <h2>{t("recentRequests")}</h2>
        {loaded.requests.items.length === 0 ? (
          <p>{t("none")}</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">{t("acceptedAt")}</th>
                <th scope="col">{t("total")}</th>
                <th scope="col">{t("delivered")}</th>
                <th scope="col">{t("failed")}</th>
              </tr>
            </thead>
            <tbody>
              {loaded.requests.items.map((request) => (
                <tr key={request.id}>
                  <td>{time.format(new Date(request.accepted_at))}</td>
                  <td>{number.format(request.total)}</td>
                  <td>{number.format(request.by_status["delivered"] ?? 0)}</td>
                  <td>{number.format(request.by_status["failed"] ?? 0)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </>
  );
}
