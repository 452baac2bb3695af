// Points: the balance, what is reserved and spent, and the ledger, newest first, a
// page at a time (every top-up, reservation, settlement, refund and release).
import { useEffect, useState } from "preact/hooks";
import { api, messageOf, type Schemas } from "../api/client";
import { numbers, times } from "../format";
import { t, type Word } from "../i18n";
import { Tile } from "./tile";
import { Listing, usePages } from "./listing";
import { Messages } from "./messages";

export function Points() {
  const [account, setAccount] = useState<Schemas["Account"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const ledger = usePages((after) =>
    api.GET("/v1/points/ledger", { params: { query: { limit: 20, ...(after ? { cursor: after } : {}) } } }),
  );

  useEffect(() => {
    api.GET("/v1/points").then(({ data, error }) => (data ? setAccount(data) : setError(messageOf(error))));
  }, []);

  const number = numbers();
  const time = times();

  return (
    <>
      <h1>{t("points")}</h1>
      <Messages error={error ?? ledger.error} />
      {account && (
        <section class="tiles" aria-label={t("points")}>
          {(["balance", "reserved", "spent", "topped_up"] as const).map((part) => (
            <Tile key={part} label={t(`points_${part}` as Word)} value={number.format(account[part])} />
          ))}
        </section>
      )}
      <section class="card" aria-labelledby="ledger-title">
        <h2 id="ledger-title">{t("ledger")}</h2>
        <Listing items={ledger.items} more={ledger.more} columns={[t("when"), t("kind"), t("amount"), t("points_balance"), t("request")]}>
          {(entry) => (
            <tr key={entry.id ?? `${entry.at_ms}:${entry.kind}:${entry.balance}`}>
              <td>{time.format(new Date(entry.at_ms))}</td>
              <td>{t(`ledger_${entry.kind}` as Word)}</td>
              <td>{number.format(entry.amount)}</td>
              <td>{number.format(entry.balance)}</td>
              <td>
                <RequestsOf requests={entry.requests ?? []} />
              </td>
            </tr>
          )}
        </Listing>
      </section>
    </>
  );
}

/** The requests a ledger entry covers: one by its id; several (reserved or settled
 * together) by the first and how many more, every id in the title. */
function RequestsOf({ requests }: { requests: { request_id: string }[] }) {
  const [first, ...rest] = requests;
  if (!first) return null;
  const ids = requests.map((share) => share.request_id);
  return (
    <small title={ids.join("\n")}>
      {first.request_id}
      {rest.length > 0 ? ` +${rest.length}` : ""}
    </small>
  );
}
