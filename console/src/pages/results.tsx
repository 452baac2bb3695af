// Results: the latest requests; one chosen shows its summary (per status and per
// carrier, charted, and its points); the messages, filtered by status, carrier,
// type, dates, text or recipient, a page at a time, each with its timeline; and the
// filtered messages exported as CSV. A page is one bounded API call, so it stays
// fast however many messages the customer has.
import { useEffect, useState } from "preact/hooks";
import { api, messageOf, type Schemas } from "../api/client";
import { numbers, times } from "../format";
import { t, wordFor } from "../i18n";
import { BarChart } from "./chart";
import { Messages } from "./messages";

type Filters = {
  status: string;
  carrier: string;
  type: string;
  since: string;
  until: string;
  text: string;
  to_number: string;
};
const NO_FILTERS: Filters = { status: "", carrier: "", type: "", since: "", until: "", text: "", to_number: "" };
const STATUSES = ["queued", "submitted", "delivered", "failed", "blocked", "unknown", "expired", "undeliverable"];
const TYPES = ["sms", "lms", "mms", "alimtalk"];
/** How often a request's results on their way are read again. */
const FOLLOW_MILLISECONDS = 2_000;
/** Most messages one export reads. */
const EXPORT_LIMIT = 100_000;

/** The request the address names (`#/results?request=…`), if any. */
function requestInAddress(): string {
  return new URLSearchParams(location.hash.split("?")[1] ?? "").get("request") ?? "";
}

/** A `datetime-local` value as a Korean time in RFC 3339. */
function korean(value: string): string | undefined {
  return value ? `${value}:00+09:00` : undefined;
}

/** How far back a text search without a start looks (see BENCHMARKS.md, "Result queries"). */
const TEXT_SEARCH_DEFAULT_MILLISECONDS = 24 * 60 * 60 * 1000;

function query(filters: Filters, request: string) {
  // A substring search over a customer's whole history reads every text it has; a
  // day's takes tens of milliseconds. Without a start, the console searches the last
  // day (one request's messages are few, so searched whole).
  const since = filters.since
    ? korean(filters.since)
    : filters.text && !request
      ? new Date(Date.now() - TEXT_SEARCH_DEFAULT_MILLISECONDS).toISOString()
      : undefined;
  return {
    ...(filters.status ? { status: filters.status } : {}),
    ...(filters.carrier ? { carrier: filters.carrier } : {}),
    ...(filters.type ? { type: filters.type } : {}),
    ...(since ? { since } : {}),
    ...(filters.until ? { until: korean(filters.until) } : {}),
    ...(filters.text ? { text: filters.text } : {}),
    ...(filters.to_number ? { to_number: filters.to_number } : {}),
    ...(request ? { request_id: request } : {}),
  };
}

function csvCell(value: unknown): string {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function Results() {
  const [requests, setRequests] = useState<Schemas["RequestView"][]>([]);
  const [request, setRequest] = useState(requestInAddress());
  const [summary, setSummary] = useState<Schemas["RequestView"] | null>(null);
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [messages, setMessages] = useState<Schemas["ListedMessage"][] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [opened, setOpened] = useState<Schemas["MessageView"] | null>(null);
  const [carriers, setCarriers] = useState<string[]>([]);
  const [exporting, setExporting] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    api.GET("/v1/requests", { params: { query: { limit: 20 } } }).then(({ data, error }) => {
      if (data) setRequests(data.items);
      else setError(messageOf(error));
    });
    api.GET("/v1/carriers").then(({ data }) => setCarriers([...new Set((data?.items ?? []).map((carrier) => carrier.id))]));
    const followed = () => setRequest(requestInAddress());
    addEventListener("hashchange", followed);
    return () => removeEventListener("hashchange", followed);
  }, []);

  async function loadSummary() {
    if (!request) return setSummary(null);
    const { data, error, response } = await api.GET("/v1/requests/{id}", { params: { path: { id: request } } });
    // A request just accepted is recorded a moment later: not found yet is no error.
    if (data || response.status === 404) setSummary(data ?? null);
    else setError(messageOf(error));
  }

  async function loadMessages(after: string | null) {
    const { data, error } = await api.GET("/v1/messages", {
      params: { query: { ...query(filters, request), limit: 50, ...(after ? { cursor: after } : {}) } },
    });
    if (!data) return setError(messageOf(error));
    setError(null);
    setMessages((shown) => (after && shown ? [...shown, ...data.items] : data.items));
    setCursor(data.next_cursor ?? null);
  }

  useEffect(() => {
    loadSummary();
    loadMessages(null);
  }, [request, filters]);

  // While the chosen request is unrecorded or has messages on their way, its results
  // are read again every few seconds, so they arrive on the page by themselves.
  const settled =
    summary !== null && !Object.keys(summary.by_status).some((status) => status === "queued" || status === "submitted");
  useEffect(() => {
    if (!request || settled) return;
    const timer = setInterval(refresh, FOLLOW_MILLISECONDS);
    return () => clearInterval(timer);
  }, [request, filters, settled]);

  async function open(id: string) {
    const { data, error } = await api.GET("/v1/messages/{id}", { params: { path: { id } } });
    if (data) setOpened(data);
    else setError(messageOf(error));
  }

  function refresh() {
    loadSummary();
    loadMessages(null);
  }

  function filter(event: Event) {
    event.preventDefault();
    const values = new FormData(event.currentTarget as HTMLFormElement);
    const read = (name: keyof Filters) => String(values.get(`filter-${name}`) ?? "").trim();
    setFilters({
      status: read("status"),
      carrier: read("carrier"),
      type: read("type"),
      since: read("since"),
      until: read("until"),
      text: read("text"),
      to_number: read("to_number"),
    });
  }

  async function exportCsv() {
    setExporting(true);
    const lines = ["id,request_id,accepted_at,to,from,type,status,carrier,text"];
    let after: string | null = null;
    do {
      const cursor: Record<string, string> = after ? { cursor: after } : {};
      const answer = await api.GET("/v1/messages", {
        params: { query: { ...query(filters, request), limit: 1000, ...cursor } },
      });
      const data: Schemas["MessagePage"] | undefined = answer.data;
      if (!data) {
        setExporting(false);
        return setError(messageOf(answer.error));
      }
      for (const message of data.items) {
        lines.push(
          [message.id, message.request_id, message.accepted_at, message.to, message.from, message.type, message.status, message.carrier, message.text]
            .map(csvCell)
            .join(","),
        );
      }
      after = data.next_cursor ?? null;
    } while (after && lines.length <= EXPORT_LIMIT);
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob(["\uFEFF" + lines.join("\n") + "\n"], { type: "text/csv" }));
    link.download = `rns-messages${request ? `-${request}` : ""}.csv`;
    link.click();
    URL.revokeObjectURL(link.href);
    setExporting(false);
  }

  const number = numbers();
  const clock = times();

  return (
    <>
      <h1>{t("results")}</h1>
      <Messages error={error} />
      <section class="card" aria-labelledby="requests-title">
        <h2 id="requests-title">{t("recentRequests")}</h2>
        <div class="field">
          <label for="results-request">{t("request")}</label>
          <select
            id="results-request"
            value={request}
            onChange={(event) => (location.hash = event.currentTarget.value ? `#/results?request=${event.currentTarget.value}` : "#/results")}
          >
            <option value="">{t("allRequests")}</option>
            {request && !requests.some((each) => each.id === request) && <option value={request}>{request}</option>}
            {requests.map((each) => (
              <option key={each.id} value={each.id}>
                {clock.format(new Date(each.accepted_at))} · {number.format(each.total)}
              </option>
            ))}
          </select>
        </div>
        {request && !summary && <p aria-live="polite">{t("awaitingResults")}</p>}
        {summary && (
          <div data-testid="request-summary">
            <p>
              {t("requestSummary", {
                total: number.format(summary.total),
                reserved: number.format(summary.points.reserved),
                spent: number.format(summary.points.spent),
                refunded: number.format(summary.points.refunded),
              })}
            </p>
            <div class="charts">
              <BarChart title={t("byStatus")} counts={summary.by_status} label={(status) => wordFor(`message_${status}`) ?? status} />
              <BarChart title={t("byCarrier")} counts={summary.by_carrier} label={(carrier) => carrier.toUpperCase()} />
            </div>
          </div>
        )}
      </section>

      <section class="card" aria-labelledby="messages-title">
        <h2 id="messages-title">{t("messagesTitle")}</h2>
        <form class="filters" onSubmit={filter} aria-label={t("filters")}>
          <div class="field">
            <label for="filter-status">{t("status")}</label>
            <select id="filter-status" name="filter-status" defaultValue={filters.status}>
              <option value="">{t("any")}</option>
              {STATUSES.map((status) => (
                <option key={status} value={status}>
                  {wordFor(`message_${status}`) ?? status}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="filter-carrier">{t("carrier")}</label>
            <select id="filter-carrier" name="filter-carrier" defaultValue={filters.carrier}>
              <option value="">{t("any")}</option>
              {carriers.map((carrier) => (
                <option key={carrier} value={carrier}>
                  {carrier.toUpperCase()}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="filter-type">{t("type")}</label>
            <select id="filter-type" name="filter-type" defaultValue={filters.type}>
              <option value="">{t("any")}</option>
              {TYPES.map((type) => (
                <option key={type} value={type}>
                  {type.toUpperCase()}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="filter-since">{t("since")}</label>
            <input id="filter-since" name="filter-since" type="datetime-local" defaultValue={filters.since} />
          </div>
          <div class="field">
            <label for="filter-until">{t("until")}</label>
            <input id="filter-until" name="filter-until" type="datetime-local" defaultValue={filters.until} />
          </div>
          <div class="field">
            <label for="filter-text">{t("text")}</label>
            <input id="filter-text" name="filter-text" defaultValue={filters.text} aria-describedby="filter-text-hint" />
            <small id="filter-text-hint" class="hint">
              {t("textSearchHelp")}
            </small>
          </div>
          <div class="field">
            <label for="filter-to_number">{t("recipientNumber")}</label>
            <input id="filter-to_number" name="filter-to_number" type="tel" defaultValue={filters.to_number} />
          </div>
          <div class="buttons">
            <button type="submit">{t("applyFilters")}</button>
            <button type="button" class="secondary" onClick={refresh}>
              {t("refresh")}
            </button>
            <button type="button" class="secondary" onClick={exportCsv} disabled={exporting}>
              {t("exportCsv")}
            </button>
          </div>
        </form>
        {messages === null ? (
          <p>{t("loading")}</p>
        ) : messages.length === 0 ? (
          <p>{t("none")}</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">{t("acceptedAt")}</th>
                <th scope="col">{t("recipientNumber")}</th>
                <th scope="col">{t("type")}</th>
                <th scope="col">{t("text")}</th>
                <th scope="col">{t("status")}</th>
                <th scope="col">{t("carrier")}</th>
              </tr>
            </thead>
            <tbody>
              {messages.map((message) => (
                <tr key={message.id}>
                  <td>{clock.format(new Date(message.accepted_at))}</td>
                  <td>
                    <button type="button" class="link" onClick={() => open(message.id)}>
                      {message.to}
                    </button>
                  </td>
                  <td>{message.type.toUpperCase()}</td>
                  <td class="message-text">{message.text}</td>
                  <td class={`message-${message.status}`}>{wordFor(`message_${message.status}`) ?? message.status}</td>
                  <td>{message.carrier?.toUpperCase() ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {cursor && (
          <button type="button" class="secondary" onClick={() => loadMessages(cursor)}>
            {t("more")}
          </button>
        )}
      </section>

      {opened && (
        <section class="card" aria-labelledby="timeline-title" data-testid="timeline">
          <h2 id="timeline-title">{t("timeline", { to: opened.to })}</h2>
          <p class="message-text">{opened.text}</p>
          <ol class="timeline">
            {opened.events.map((event, index) => (
              <li key={index}>
                <time dateTime={event.at}>{clock.format(new Date(event.at))}</time> — {wordFor(`event_${event.kind}`) ?? event.kind}
                {event.carrier ? ` · ${event.carrier.toUpperCase()}` : ""}
                {event.detail ? ` · ${event.detail}` : ""}
              </li>
            ))}
          </ol>
          <button type="button" class="secondary" onClick={() => setOpened(null)}>
            {t("close")}
          </button>
        </section>
      )}
    </>
  );
}
