// The status webhook: where results are POSTed and which, a new signing secret made
// in this browser and shown once (setting it is the rotation: the old one stops at
// once), and the recent delivery attempts with their outcome.
import { useEffect, useState } from "preact/hooks";
import { api, messageOf, type Schemas } from "../api/client";
import { times } from "../format";
import { t, type Word } from "../i18n";
import { Listing, usePages } from "./listing";
import { Messages } from "./messages";

/** A random secret of 32 bytes, as 64 hex digits. */
function newSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export function Webhook() {
  const [webhook, setWebhook] = useState<Schemas["WebhookView"] | null | undefined>(undefined);
  const [secret, setSecret] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const attempts = usePages((after) =>
    api.GET("/v1/webhook/deliveries", { params: { query: { limit: 20, ...(after ? { cursor: after } : {}) } } }),
  );

  async function load() {
    const current = await api.GET("/v1/webhook");
    setWebhook(current.data ?? null);
    attempts.reload();
  }
  useEffect(() => {
    load();
  }, []);

  async function save(url: string, events: Schemas["WebhookEvents"], rotated: string) {
    const { error } = await api.PUT("/v1/webhook", { body: { url, events, secret: rotated } });
    if (error) return setError(messageOf(error));
    setError(null);
    setSecret(rotated);
    setNotice(t("webhookSaved"));
    load();
  }

  function submit(event: Event) {
    event.preventDefault();
    const values = new FormData(event.currentTarget as HTMLFormElement);
    save(String(values.get("webhook-url")), String(values.get("webhook-events")) as Schemas["WebhookEvents"], newSecret());
  }

  async function stop() {
    const { error } = await api.DELETE("/v1/webhook");
    if (error) return setError(messageOf(error));
    setSecret(null);
    setNotice(t("webhookStopped"));
    load();
  }

  const clock = times();
  if (webhook === undefined) return <p>{t("loading")}</p>;

  return (
    <>
      <h1>{t("webhook")}</h1>
      <Messages error={error} notice={notice} />
      <form class="card" onSubmit={submit} aria-labelledby="webhook-title" key={webhook?.updated_at ?? "none"}>
        <h2 id="webhook-title">{t("webhookSettings")}</h2>
        <p class="hint">{t("webhookHelp")}</p>
        <div class="field">
          <label for="webhook-url">{t("webhookUrl")}</label>
          <input
            id="webhook-url"
            name="webhook-url"
            type="url"
            required
            placeholder="https://example.com/rns"
            defaultValue={webhook?.url ?? ""}
          />
        </div>
        <div class="field">
          <label for="webhook-events">{t("webhookEvents")}</label>
          <select id="webhook-events" name="webhook-events" defaultValue={webhook?.events ?? "final"}>
            <option value="final">{t("events_final")}</option>
            <option value="all">{t("events_all")}</option>
          </select>
        </div>
        <button type="submit">{webhook ? t("saveAndRotate") : t("save")}</button>
        {webhook && (
          <button type="button" class="danger" onClick={stop}>
            {t("stopWebhook")}
          </button>
        )}
      </form>
      {secret && (
        <section class="card shown" aria-labelledby="secret-title">
          <h2 id="secret-title">{t("secretShownOnce")}</h2>
          <code data-testid="webhook-secret">{secret}</code>
        </section>
      )}
      <section class="card" aria-labelledby="attempts-title">
        <h2 id="attempts-title">{t("recentDeliveries")}</h2>
        <Listing items={attempts.items} more={attempts.more} columns={[t("when"), t("outcome"), t("httpStatus"), t("eventsCount"), t("duration"), t("nextAttempt")]}>
          {(attempt) => (
            <tr key={`${attempt.delivery_id}-${attempt.attempt}`}>
              <td>{clock.format(new Date(attempt.at))}</td>
              <td>{t(`outcome_${attempt.outcome}` as Word)}</td>
              <td>{attempt.status ?? attempt.error ?? ""}</td>
              <td>{attempt.events}</td>
              <td>{attempt.duration_ms} ms</td>
              <td>{attempt.next_attempt_at ? clock.format(new Date(attempt.next_attempt_at)) : ""}</td>
            </tr>
          )}
        </Listing>
      </section>
    </>
  );
}
