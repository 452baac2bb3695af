// Points: the balance, what is reserved and spent, and the ledger, newest first, a
// page at a time (every top-up, reservation, settlement, refund and release).
import { useEffect, useState } from "preact/hooks";
import { api, messageOf, type Schemas } from "../api/client";
import { numbers, times } from "../format";
import { t, type Word } from "../i18n";
import { Tile } from "./tile";
import { Messages } from "./messages";

export function Points() {
  const [account, setAccount] = useState<Schemas["Account"] | null>(null);
  const [entries, setEntries] = useState<Schemas["LedgerEntry"][]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function more(after: string | null) {
    const { data, error } = await api.GET("/v1/points/ledger", {
      params: { query: { limit: 20, ...(after ? { cursor: after } : {}) } },
    });
    if (!data) return setError(messageOf(error));
    setEntries((shown) => (after ? [...shown, ...data.items] : data.items));
    setCursor(data.next_cursor ?? null);
  }

  useEffect(() => {
    api.GET("/v1/points").then(({ data, error }) => (data ? setAccount(data) : setError(messageOf(error))));
    more(null);
  }, []);

  const number = numbers();
  const time = times();

  return (
    <>
      <h1>{t("points")}</h1>
      <Messages error={error} />
      {account && (
        <section class="tiles" aria-label={t("points")}>
          {(["balance", "reserved", "spent", "topped_up"] as const).map((part) => (
            <Tile key={part} label={t(`points_${part}` as Word)} value={number.format(account[part])} />
          ))}
        </section>
      )}
      <section class="card" aria-labelledby="ledger-title">
        <h2 id="ledger-title">{t("ledger")}</h2>
        {entries.length === 0 ? (
          <p>{t("none")}</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">{t("when")}</th>
                <th scope="col">{t("kind")}</th>
                <th scope="col">{t("amount")}</th>
                <th scope="col">{t("points_balance")}</th>
                <th scope="col">{t("request")}</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((entry, index) => (
                <tr key={entry.id ?? index}>
                  <td>{time.format(new Date(entry.at_ms))}</td>
                  <td>{t(`ledger_${entry.kind}` as Word)}</td>
                  <td>{number.format(entry.amount)}</td>
                  <td>{number.format(entry.balance)}</td>
                  <td>
                    <small>{entry.request_id ?? ""}</small>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {cursor && (
          <button type="button" class="secondary" onClick={() => more(cursor)}>
            {t("more")}
          </button>
        )}
      </section>
    </>
  );
}
