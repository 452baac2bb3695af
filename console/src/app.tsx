// The console's frame: who is signed in (GET /v1/auth/session), and the page the
// address's hash names. Signed out, only sign-in and sign-up; signed in with an
// unproved phone, only its verification.
import { useEffect, useState } from "preact/hooks";
import { api, useCsrfToken, type Schemas } from "./api/client";
import { language, setLanguage, t } from "./i18n";
import { ApiKeys } from "./pages/api_keys";
import { Contacts } from "./pages/contacts";
import { Home } from "./pages/home";
import { Blocklist } from "./pages/blocklist";
import { Members } from "./pages/members";
import { Operator } from "./pages/operator";
import { Points } from "./pages/points";
import { Results } from "./pages/results";
import { Routing } from "./pages/routing";
import { Schedules } from "./pages/schedules";
import { Send } from "./pages/send";
import { Templates } from "./pages/templates";
import { Webhook } from "./pages/webhook";
import { SenderNumbers } from "./pages/sender_numbers";
import { SignIn, SignUp } from "./pages/enter";
import { VerifyPhone } from "./pages/verify_phone";

export type Session = Schemas["SessionView"];

/** The page the address names after `#`, without its `?` part. */
function useHash(): string {
  const page = () => location.hash.split("?")[0] ?? "";
  const [hash, setHash] = useState(page());
  useEffect(() => {
    const changed = () => setHash(page());
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return hash;
}

export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const hash = useHash();
  document.documentElement.lang = language.value;
  document.title = t("title");

  useEffect(() => {
    api.GET("/v1/auth/session").then(({ data }) => signedIn(data ?? null));
  }, []);

  function signedIn(next: Session | null) {
    useCsrfToken(next?.csrf_token ?? null);
    setSession(next);
  }

  async function signOut() {
    await api.POST("/v1/auth/signout");
    signedIn(null);
    location.hash = "#/signin";
  }

  let page;
  if (hash.startsWith("#/operator")) {
    page = <Operator page={hash.slice("#/operator/".length)} />;
  } else if (session === undefined) {
    page = <p>{t("loading")}</p>;
  } else if (session === null) {
    page = hash === "#/signup" ? <SignUp onEntered={signedIn} /> : <SignIn onEntered={signedIn} />;
  } else if (!session.person.phone_verified) {
    page = <VerifyPhone session={session} onVerified={signedIn} />;
  } else if (hash === "#/send") {
    page = <Send />;
  } else if (hash === "#/results") {
    page = <Results />;
  } else if (hash === "#/contacts") {
    page = <Contacts />;
  } else if (hash === "#/schedules") {
    page = <Schedules />;
  } else if (hash === "#/routing") {
    page = <Routing />;
  } else if (hash === "#/templates") {
    page = <Templates />;
  } else if (hash === "#/blocklist") {
    page = <Blocklist />;
  } else if (hash === "#/webhook") {
    page = <Webhook />;
  } else if (hash === "#/sender-numbers") {
    page = <SenderNumbers />;
  } else if (hash === "#/api-keys" && session.person.role === "owner") {
    page = <ApiKeys />;
  } else if (hash === "#/points") {
    page = <Points />;
  } else if (hash === "#/members") {
    page = <Members session={session} />;
  } else {
    page = <Home session={session} />;
  }
  const current = (target: string) => (hash === target ? "page" : undefined);

  return (
    <>
      <a class="skip" href="#main">
        {t("skip")}
      </a>
      <header class="top">
        <span class="brand">RNS</span>
        {session?.person.phone_verified && (
          <nav aria-label="console">
            <a href="#/" aria-current={hash === "" || hash === "#/" ? "page" : undefined}>
              {t("home")}
            </a>
            {(["send", "results", "contacts", "templates", "schedules", "routing"] as const).map((target) => (
              <a key={target} href={`#/${target}`} aria-current={current(`#/${target}`)}>
                {t(target)}
              </a>
            ))}
            <a href="#/sender-numbers" aria-current={current("#/sender-numbers")}>
              {t("senderNumbers")}
            </a>
            {session.person.role === "owner" && (
              <a href="#/api-keys" aria-current={current("#/api-keys")}>
                {t("apiKeys")}
              </a>
            )}
            <a href="#/points" aria-current={current("#/points")}>
              {t("points")}
            </a>
            <a href="#/blocklist" aria-current={current("#/blocklist")}>
              {t("blocklist")}
            </a>
            <a href="#/webhook" aria-current={current("#/webhook")}>
              {t("webhook")}
            </a>
            <a href="#/members" aria-current={current("#/members")}>
              {t("members")}
            </a>
          </nav>
        )}
        <span class="grow" />
        {session && <span class="who">{session.person.name} · {session.customer.name}</span>}
        <button
          type="button"
          class="link"
          onClick={() => setLanguage(language.value === "ko" ? "en" : "ko")}
        >
          {t("language")}
        </button>
        {session && (
          <button type="button" class="link" onClick={signOut}>
            {t("signOut")}
          </button>
        )}
      </header>
      <main id="main" tabIndex={-1}>
        {page}
      </main>
      <footer class="bottom">
        <a href="#/operator">{t("operator")}</a>
      </footer>
    </>
  );
}
