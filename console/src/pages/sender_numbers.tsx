// Sender numbers: register one, enter the code texted to a mobile number, see what
// the operator decided about the others.
import { useEffect, useState } from "preact/hooks";
import { api, messageOf, type Schemas } from "../api/client";
import { t, type Word } from "../i18n";
import { Field } from "./field";
import { Messages } from "./messages";

type SenderNumber = Schemas["SenderNumberView"];

export function SenderNumbers() {
  const [numbers, setNumbers] = useState<SenderNumber[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  async function load() {
    const { data, error } = await api.GET("/v1/sender-numbers", { params: { query: { limit: 1000 } } });
    if (data) setNumbers(data.items);
    else setError(messageOf(error));
  }
  useEffect(() => {
    load();
  }, []);

  async function register(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const number = String(new FormData(form).get("number"));
    const { data, error } = await api.POST("/v1/sender-numbers", { body: { number } });
    if (!data) return setError(messageOf(error));
    setError(null);
    setNotice(data.method === "sms_code" ? t("codeSentTo", { phone: data.number }) : t("awaitsOperator"));
    form.reset();
    load();
  }

  async function verify(number: string, event: Event) {
    event.preventDefault();
    const code = String(new FormData(event.currentTarget as HTMLFormElement).get("code"));
    const { error } = await api.POST("/v1/sender-numbers/{number}/verification", {
      params: { path: { number } },
      body: { code },
    });
    if (error) return setError(messageOf(error));
    setError(null);
    setNotice(t("verifiedNumber", { phone: number }));
    load();
  }

  async function resend(number: string) {
    const { error } = await api.POST("/v1/sender-numbers/{number}/verification-code", {
      params: { path: { number } },
    });
    setError(error ? messageOf(error) : null);
    setNotice(error ? null : t("codeSentTo", { phone: number }));
  }

  return (
    <>
      <h1>{t("senderNumbers")}</h1>
      <form class="card" onSubmit={register} aria-labelledby="register-title">
        <h2 id="register-title">{t("registerNumber")}</h2>
        <p class="hint">{t("registerHelp")}</p>
        <Field name="number" label={t("senderNumber")} type="tel" placeholder="02-1234-5678" />
        <button type="submit">{t("register")}</button>
      </form>
      <Messages error={error} notice={notice} />
      <section class="card" aria-labelledby="numbers-title">
        <h2 id="numbers-title">{t("registeredNumbers")}</h2>
        {numbers === null ? (
          <p>{t("loading")}</p>
        ) : numbers.length === 0 ? (
          <p>{t("none")}</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">{t("senderNumber")}</th>
                <th scope="col">{t("status")}</th>
                <th scope="col">{t("optOutNumber")}</th>
                <th scope="col">{t("nextStep")}</th>
              </tr>
            </thead>
            <tbody>
              {numbers.map((number) => (
                <tr key={number.number}>
                  <td>{number.number}</td>
                  <td class={`status-${number.status}`}>{t(`status_${number.status}` as Word)}</td>
                  <td>{number.opt_out_number}</td>
                  <td>
                    {number.status === "pending" && number.method === "sms_code" ? (
                      <form class="inline" onSubmit={(event) => verify(number.number, event)}>
                        <label for={`code-${number.number}`}>{t("code")}</label>
                        <input
                          id={`code-${number.number}`}
                          name="code"
                          inputMode="numeric"
                          pattern="[0-9]{6}"
                          autoComplete="one-time-code"
                          required
                        />
                        <button type="submit">{t("verify")}</button>
                        <button type="button" class="secondary" onClick={() => resend(number.number)}>
                          {t("resend")}
                        </button>
                      </form>
                    ) : (
                      number.reason ?? number.next_step ?? ""
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </>
  );
}
