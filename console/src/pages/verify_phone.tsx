// The person's phone, proved by the code RNS texted to it at sign-up.
import { useState } from "preact/hooks";
import { api, messageOf, type Schemas } from "../api/client";
import { t } from "../i18n";
import { Field } from "./field";
import { Messages } from "./messages";

export function VerifyPhone({
  session,
  onVerified,
}: {
  session: Schemas["SessionView"];
  onVerified: (session: Schemas["SessionView"]) => void;
}) {
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  async function submit(event: Event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const { data, error } = await api.POST("/v1/auth/phone-verification", {
      body: { code: String(form.get("code")) },
    });
    if (data) onVerified(data);
    else setError(messageOf(error));
  }

  async function resend() {
    const { error } = await api.POST("/v1/auth/phone-verification-code");
    setError(error ? messageOf(error) : null);
    setNotice(error ? null : t("resent"));
  }

  return (
    <form class="card narrow" onSubmit={submit} aria-labelledby="verify-title">
      <h1 id="verify-title">{t("verifyTitle")}</h1>
      <p>{t("verifyHelp", { phone: session.person.phone })}</p>
      <Field name="code" label={t("code")} autocomplete="one-time-code" inputMode="numeric" pattern="[0-9]{6}" />
      <Messages error={error} notice={notice} />
      <button type="submit">{t("verify")}</button>
      <button type="button" class="secondary" onClick={resend}>
        {t("resend")}
      </button>
    </form>
  );
}
