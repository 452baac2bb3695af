// Signing up (a new customer, with the person as its owner) and signing in.
import { useState } from "preact/hooks";
import { api, messageOf, type Schemas } from "../api/client";
import { t } from "../i18n";
import { Field } from "./field";
import { Messages } from "./messages";

type Entered = (session: Schemas["SessionView"]) => void;

/** The invitation the address carries (`#/signup?invitation=…`), if any. */
function invitation(): string | null {
  return new URLSearchParams(location.hash.split("?")[1] ?? "").get("invitation");
}

export function SignUp({ onEntered }: { onEntered: Entered }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const invited = invitation();

  async function submit(event: Event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    setBusy(true);
    const { data, error } = await api.POST("/v1/auth/signup", {
      body: {
        email: String(form.get("email")),
        password: String(form.get("password")),
        name: String(form.get("name")),
        phone: String(form.get("phone")),
        ...(invited ? { invitation: invited } : { company: String(form.get("company")) }),
      },
    });
    setBusy(false);
    if (data) {
      location.hash = "#/";
      onEntered(data);
    } else {
      setError(messageOf(error));
    }
  }

  return (
    <form class="card narrow" onSubmit={submit} aria-labelledby="signup-title">
      <h1 id="signup-title">{t("signUp")}</h1>
      <Field name="email" label={t("email")} type="email" autocomplete="email" />
      <Field
        name="password"
        label={t("password")}
        type="password"
        autocomplete="new-password"
        hint={t("passwordHint")}
        minLength={10}
      />
      <Field name="name" label={t("name")} autocomplete="name" />
      <Field name="phone" label={t("phone")} type="tel" autocomplete="tel" placeholder="010-1234-5678" />
      {invited ? <p>{t("invited")}</p> : <Field name="company" label={t("company")} autocomplete="organization" />}
      <Messages error={error} />
      <button type="submit" disabled={busy}>
        {t("signUp")}
      </button>
      <p>
        {t("haveAccount")} <a href="#/signin">{t("signIn")}</a>
      </p>
    </form>
  );
}

export function SignIn({ onEntered }: { onEntered: Entered }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: Event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    setBusy(true);
    const { data, error } = await api.POST("/v1/auth/signin", {
      body: { email: String(form.get("email")), password: String(form.get("password")) },
    });
    setBusy(false);
    if (data) {
      location.hash = "#/";
      onEntered(data);
    } else {
      setError(messageOf(error));
    }
  }

  return (
    <form class="card narrow" onSubmit={submit} aria-labelledby="signin-title">
      <h1 id="signin-title">{t("signIn")}</h1>
      <Field name="email" label={t("email")} type="email" autocomplete="email" />
      <Field name="password" label={t("password")} type="password" autocomplete="current-password" />
      <Messages error={error} />
      <button type="submit" disabled={busy}>
        {t("signIn")}
      </button>
      <p>
        {t("noAccount")} <a href="#/signup">{t("signUp")}</a>
      </p>
    </form>
  );
}
