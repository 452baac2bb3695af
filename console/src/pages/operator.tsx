// The operator's pages, entered with the operator key: customers (found by id or
// name, topped up, suspended and resumed), sender numbers waiting for review,
// carriers (circuit, rate limit) and each stream's queue with its lag — the same
// /v1/admin API the operator's scripts use.
import { useEffect, useState } from "preact/hooks";
import { hasOperatorKey, messageOf, operatorApi, useOperatorKey, type Schemas } from "../api/client";
import { numbers, times } from "../format";
import { t, type Word } from "../i18n";
import { Listing, usePages } from "./listing";
import { Messages } from "./messages";
import { NamedButton } from "./named_button";

export const OPERATOR_PAGES = ["customers", "reviews", "carriers", "queues"] as const;
type OperatorPage = (typeof OPERATOR_PAGES)[number];

function OperatorSignIn({ onEntered }: { onEntered: () => void }) {
  const [error, setError] = useState<string | null>(null);

  async function enter(event: Event) {
    event.preventDefault();
    const key = String(new FormData(event.currentTarget as HTMLFormElement).get("admin-key"));
    useOperatorKey(key);
    const { error } = await operatorApi.GET("/v1/admin/customers", { params: { query: { limit: 1 } } });
    if (error) {
      useOperatorKey(null);
      return setError(messageOf(error));
    }
    onEntered();
  }

  return (
    <form class="card narrow" onSubmit={enter} aria-labelledby="operator-title">
      <h1 id="operator-title">{t("operatorSignIn")}</h1>
      <p class="hint">{t("operatorHelp")}</p>
      <Messages error={error} />
      <div class="field">
        <label for="admin-key">{t("adminKey")}</label>
        <input id="admin-key" name="admin-key" type="password" autoComplete="off" required />
      </div>
      <button type="submit">{t("enter")}</button>
    </form>
  );
}

function Customers() {
  const [search, setSearch] = useState({ q: "", suspended: false });
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const customers = usePages(
    (after) =>
      operatorApi.GET("/v1/admin/customers", {
        params: {
          query: {
            limit: 50,
            ...(search.q ? { q: search.q } : {}),
            ...(search.suspended ? { suspended: true } : {}),
            ...(after ? { cursor: after } : {}),
          },
        },
      }),
    [search],
  );

  function said(message: string) {
    setError(null);
    setNotice(message);
    customers.reload();
  }

  async function topUp(customer: string, event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const amount = Number(new FormData(form).get("amount"));
    const { error } = await operatorApi.POST("/v1/admin/customers/{id}/points", {
      params: { path: { id: customer } },
      body: { amount, reason: "console top-up" },
    });
    if (error) return setError(messageOf(error));
    form.reset();
    said(t("toppedUp", { customer, amount: numbers().format(amount) }));
  }

  async function suspend(customer: string, event: Event) {
    event.preventDefault();
    const reason = String(new FormData(event.currentTarget as HTMLFormElement).get("reason") ?? "").trim();
    const { error } = await operatorApi.PUT("/v1/admin/customers/{id}/suspension", {
      params: { path: { id: customer } },
      body: { reason },
    });
    if (error) return setError(messageOf(error));
    said(t("customerSuspended", { customer }));
  }

  async function resume(customer: string) {
    const { error } = await operatorApi.DELETE("/v1/admin/customers/{id}/suspension", {
      params: { path: { id: customer } },
    });
    if (error) return setError(messageOf(error));
    said(t("customerResumed", { customer }));
  }

  const clock = times();
  return (
    <>
      <h1>{t("customers")}</h1>
      <Messages error={error ?? customers.error} notice={notice} />
      <form
        class="card inline"
        role="search"
        onSubmit={(event) => {
          event.preventDefault();
          const values = new FormData(event.currentTarget);
          setSearch({ q: String(values.get("customer-search") ?? "").trim(), suspended: values.get("only-suspended") === "on" });
        }}
      >
        <label for="customer-search">{t("searchCustomers")}</label>
        <input id="customer-search" name="customer-search" type="search" class="wide" />
        <label class="check">
          <input type="checkbox" name="only-suspended" /> {t("onlySuspended")}
        </label>
        <button type="submit" class="secondary">
          {t("search")}
        </button>
      </form>
      <section class="card" aria-labelledby="customers-title">
        <h2 id="customers-title">{t("customers")}</h2>
        <Listing items={customers.items} more={customers.more} columns={[t("customerId"), t("company"), t("senderNumbers"), t("status"), t("topUp"), t("actions")]}>
          {(customer) => (
            <tr key={customer.id}>
              <td>
                <code>{customer.id}</code>
                <br />
                <small>{clock.format(new Date(customer.created_at))}</small>
              </td>
              <td>{customer.name}</td>
              <td>{customer.sender_numbers}</td>
              <td class={customer.suspension ? "status-suspended" : undefined}>
                {customer.suspension ? `${t("suspended")} · ${customer.suspension.reason}` : t("active")}
              </td>
              <td>
                <form class="inline" onSubmit={(event) => topUp(customer.id, event)}>
                  <label class="visually-hidden" for={`amount-${customer.id}`}>
                    {t("topUp")} {customer.id}
                  </label>
                  <input id={`amount-${customer.id}`} name="amount" type="number" min={1} required />
                  <NamedButton label={t("topUp")} name={customer.id} kind="secondary" type="submit" />
                </form>
              </td>
              <td>
                {customer.suspension ? (
                  <NamedButton label={t("resume")} name={customer.id} kind="secondary" onClick={() => resume(customer.id)} />
                ) : (
                  <form class="inline" onSubmit={(event) => suspend(customer.id, event)}>
                    <label class="visually-hidden" for={`reason-${customer.id}`}>
                      {t("reason")} {customer.id}
                    </label>
                    <input id={`reason-${customer.id}`} name="reason" placeholder={t("reason")} required />
                    <NamedButton label={t("suspend")} name={customer.id} kind="danger" type="submit" />
                  </form>
                )}
              </td>
            </tr>
          )}
        </Listing>
      </section>
    </>
  );
}

function Reviews() {
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const numbers = usePages((after) =>
    operatorApi.GET("/v1/admin/sender-numbers", {
      params: { query: { status: "pending", limit: 200, ...(after ? { cursor: after } : {}) } },
    }),
  );

  async function decide(number: Schemas["ReviewedNumber"], status: "verified" | "rejected", event: Event) {
    event.preventDefault();
    const form = (event.currentTarget as HTMLElement).closest("form") as HTMLFormElement;
    const reason = String(new FormData(form).get("reason") ?? "").trim();
    if (!reason) return setError(t("reason"));
    const { error } = await operatorApi.PUT("/v1/admin/customers/{id}/sender-numbers/{number}", {
      params: { path: { id: number.customer, number: number.number } },
      body: { status, reason },
    });
    if (error) return setError(messageOf(error));
    setError(null);
    setNotice(t("numberReviewed", { number: number.number }));
    numbers.reload();
  }

  return (
    <>
      <h1>{t("reviews")}</h1>
      <Messages error={error ?? numbers.error} notice={notice} />
      <section class="card" aria-labelledby="reviews-title">
        <h2 id="reviews-title">{t("status_pending" as Word)}</h2>
        <Listing items={numbers.items} more={numbers.more} columns={[t("customer"), t("senderNumber"), t("actions")]}>
          {(number) => (
            <tr key={`${number.customer}/${number.number}`}>
              <td>
                <code>{number.customer}</code>
              </td>
              <td>{number.number}</td>
              <td>
                <form class="inline" onSubmit={(event) => decide(number, "verified", event)}>
                  <label for={`reason-${number.customer}-${number.number}`}>{t("reason")}</label>
                  <input id={`reason-${number.customer}-${number.number}`} name="reason" class="wide" required />
                  <button type="submit">{t("approve")}</button>
                  <button type="button" class="danger" onClick={(event) => decide(number, "rejected", event)}>
                    {t("reject")}
                  </button>
                </form>
              </td>
            </tr>
          )}
        </Listing>
      </section>
    </>
  );
}

function Carriers() {
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const carriers = usePages(() => operatorApi.GET("/v1/carriers"));

  async function setRate(carrier: string, event: Event) {
    event.preventDefault();
    const value = String(new FormData(event.currentTarget as HTMLFormElement).get("rate") ?? "").trim();
    const { error } = await operatorApi.PUT("/v1/admin/carriers/{id}/rate", {
      params: { path: { id: carrier } },
      body: { per_second: value ? Number(value) : null },
    });
    if (error) return setError(messageOf(error));
    setError(null);
    setNotice(t("rateSet", { carrier: carrier.toUpperCase() }));
    carriers.reload();
  }

  const clock = times();
  return (
    <>
      <h1>{t("carrier")}</h1>
      <Messages error={error ?? carriers.error} notice={notice} />
      <section class="card" aria-labelledby="carriers-title">
        <h2 id="carriers-title">{t("carriers")}</h2>
        <Listing items={carriers.items} columns={[t("carrier"), t("channel"), t("circuit"), t("ratePerSecond")]}>
          {(carrier) => (
            <tr key={carrier.id}>
              <td>{carrier.id.toUpperCase()}</td>
              <td>{t(`channel_${carrier.channel}` as Word)}</td>
              <td class={`circuit-${carrier.circuit}`}>
                {t(`circuit_${carrier.circuit}` as Word)}
                {carrier.since ? ` · ${clock.format(new Date(carrier.since))}` : ""}
                {carrier.reason ? ` · ${carrier.reason}` : ""}
              </td>
              <td>
                <form class="inline" onSubmit={(event) => setRate(carrier.id, event)}>
                  <label class="visually-hidden" for={`rate-${carrier.id}`}>
                    {t("ratePerSecond")} {carrier.id}
                  </label>
                  <input
                    id={`rate-${carrier.id}`}
                    name="rate"
                    type="number"
                    min={1}
                    placeholder={t("configuredRate")}
                    defaultValue={carrier.rate_per_second?.toString() ?? ""}
                  />
                  <NamedButton label={t("setRate")} name={carrier.id} kind="secondary" type="submit" />
                </form>
              </td>
            </tr>
          )}
        </Listing>
      </section>
    </>
  );
}

function Queues() {
  const queues = usePages(() => operatorApi.GET("/v1/admin/queues"));
  useEffect(() => {
    const timer = setInterval(queues.reload, 5_000);
    return () => clearInterval(timer);
  }, []);

  const number = numbers();
  const clock = times();
  return (
    <>
      <h1>{t("queues")}</h1>
      <Messages error={queues.error} />
      <section class="card" aria-labelledby="queues-title">
        <h2 id="queues-title">{t("queues")}</h2>
        <Listing items={queues.items} columns={[t("stream"), t("waiting"), t("oldest"), t("lag"), t("consumers")]}>
          {(queue) => (
            <tr key={queue.stream}>
              <td>
                <code>{queue.stream}</code>
              </td>
              <td>{number.format(queue.messages)}</td>
              <td>{queue.oldest_at ? clock.format(new Date(queue.oldest_at)) : ""}</td>
              <td>{queue.lag_seconds === null || queue.lag_seconds === undefined ? "" : `${number.format(queue.lag_seconds)} s`}</td>
              <td>
                {queue.consumers
                  .map((consumer) => `${consumer.name}: ${number.format(consumer.pending)} / ${number.format(consumer.ack_pending)}`)
                  .join(", ")}
              </td>
            </tr>
          )}
        </Listing>
      </section>
    </>
  );
}

/** The operator's area: its sign-in until the key is given, then the page `page`. */
export function Operator({ page }: { page: string }) {
  const [entered, setEntered] = useState(hasOperatorKey());
  if (!entered) return <OperatorSignIn onEntered={() => setEntered(true)} />;
  const shown = (OPERATOR_PAGES as readonly string[]).includes(page) ? (page as OperatorPage) : "customers";
  return (
    <>
      <nav aria-label={t("operator")} class="subnav">
        {OPERATOR_PAGES.map((each) => (
          <a key={each} href={`#/operator/${each}`} aria-current={shown === each ? "page" : undefined}>
            {t(each === "carriers" ? "carrier" : each)}
          </a>
        ))}
        <button
          type="button"
          class="link"
          onClick={() => {
            useOperatorKey(null);
            setEntered(false);
          }}
        >
          {t("leaveOperator")}
        </button>
      </nav>
      {shown === "customers" && <Customers />}
      {shown === "reviews" && <Reviews />}
      {shown === "carriers" && <Carriers />}
      {shown === "queues" && <Queues />}
    </>
  );
}
