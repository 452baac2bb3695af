// Who is never sent to: the company's blocklist (from every sender number, added or
// removed here or imported from CSV) and each sender number's opt-outs (recorded by
// its free 080 line, or here when a recipient asked another way).
import { useEffect, useState } from "preact/hooks";
import { api, messageOf, type Schemas } from "../api/client";
import { times } from "../format";
import { t } from "../i18n";
import { Listing, usePages } from "./listing";
import { Messages } from "./messages";
import { NamedButton } from "./named_button";

export function Blocklist() {
  const [senders, setSenders] = useState<string[]>([]);
  const [sender, setSender] = useState("");
  const [optOuts, setOptOuts] = useState<Schemas["OptOutPage"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const blocked = usePages((after) =>
    api.GET("/v1/blocklist", { params: { query: { limit: 50, ...(after ? { cursor: after } : {}) } } }),
  );

  async function loadOptOuts() {
    if (!sender) return setOptOuts(null);
    const { data, error } = await api.GET("/v1/opt-outs", { params: { query: { sender_number: sender, limit: 100 } } });
    if (data) setOptOuts(data);
    else setError(messageOf(error));
  }

  useEffect(() => {
    api.GET("/v1/sender-numbers", { params: { query: { limit: 1000 } } }).then(({ data }) => {
      const numbers = (data?.items ?? []).map((number) => number.number);
      setSenders(numbers);
      setSender((current) => current || numbers[0] || "");
    });
  }, []);
  useEffect(() => {
    loadOptOuts();
  }, [sender]);

  function said(message: string) {
    setError(null);
    setNotice(message);
  }

  async function block(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const number = String(new FormData(form).get("block-number"));
    const { error } = await api.POST("/v1/blocklist", { body: { number } });
    if (error) return setError(messageOf(error));
    form.reset();
    said(t("numberBlocked", { number }));
    blocked.reload();
  }

  async function unblock(number: string) {
    const { error } = await api.DELETE("/v1/blocklist/{number}", { params: { path: { number } } });
    if (error) return setError(messageOf(error));
    said(t("numberUnblocked", { number }));
    blocked.reload();
  }

  async function recordOptOut(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const recipient = String(new FormData(form).get("opt-out-number"));
    const { error } = await api.POST("/v1/opt-outs", { body: { sender_number: sender, recipient } });
    if (error) return setError(messageOf(error));
    form.reset();
    said(t("optOutRecorded", { number: recipient }));
    loadOptOuts();
  }

  async function withdraw(recipient: string) {
    const { error } = await api.DELETE("/v1/opt-outs/{sender_number}/{recipient}", {
      params: { path: { sender_number: sender, recipient } },
    });
    if (error) return setError(messageOf(error));
    said(t("optOutWithdrawn", { number: recipient }));
    loadOptOuts();
  }

  const clock = times();

  return (
    <>
      <h1>{t("blocklist")}</h1>
      <Messages error={error ?? blocked.error} notice={notice} />
      <section class="card" aria-labelledby="blocklist-title">
        <h2 id="blocklist-title">{t("blocklistTitle")}</h2>
        <p class="hint">{t("blocklistHelp")}</p>
        <form class="inline" onSubmit={block}>
          <label for="block-number">{t("recipientNumber")}</label>
          <input id="block-number" name="block-number" type="tel" required />
          <button type="submit">{t("block")}</button>
        </form>
        <Listing items={blocked.items} more={blocked.more} columns={[t("recipientNumber"), t("addedAt"), t("actions")]}>
          {(entry) => (
            <tr key={entry.number}>
              <td>{entry.number}</td>
              <td>{clock.format(new Date(entry.added_at))}</td>
              <td>
                <NamedButton label={t("unblock")} name={entry.number} kind="secondary" onClick={() => unblock(entry.number)} />
              </td>
            </tr>
          )}
        </Listing>
      </section>

      <section class="card" aria-labelledby="opt-outs-title">
        <h2 id="opt-outs-title">{t("optOuts")}</h2>
        <div class="field">
          <label for="opt-out-sender">{t("senderNumber")}</label>
          <select id="opt-out-sender" value={sender} onChange={(event) => setSender(event.currentTarget.value)}>
            {senders.map((number) => (
              <option key={number} value={number}>
                {number}
              </option>
            ))}
          </select>
        </div>
        {optOuts && <p class="hint">{t("optOutLine", { line: optOuts.opt_out_number })}</p>}
        <form class="inline" onSubmit={recordOptOut}>
          <label for="opt-out-number">{t("recipientNumber")}</label>
          <input id="opt-out-number" name="opt-out-number" type="tel" required />
          <button type="submit" disabled={!sender}>
            {t("recordOptOut")}
          </button>
        </form>
        <Listing items={optOuts?.items ?? null} columns={[t("recipientNumber"), t("addedAt"), t("actions")]}>
          {(optOut) => (
            <tr key={optOut.recipient}>
              <td>{optOut.recipient}</td>
              <td>{clock.format(new Date(optOut.opted_out_at_ms))}</td>
              <td>
                <NamedButton label={t("withdrawOptOut")} name={optOut.recipient} kind="secondary" onClick={() => withdraw(optOut.recipient)} />
              </td>
            </tr>
          )}
        </Listing>
      </section>
    </>
  );
}
