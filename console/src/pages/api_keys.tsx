// API keys: issue a named key with its scopes (shown once), see when each was last
// used, rotate or revoke one.
import { useEffect, useState } from "preact/hooks";
import { api, messageOf, type Schemas } from "../api/client";
import { t } from "../i18n";
import { Field } from "./field";
import { Messages } from "./messages";

const SCOPES = ["send", "read", "manage"] as const;

export function ApiKeys() {
  const [keys, setKeys] = useState<Schemas["KeyView"][] | null>(null);
  const [shown, setShown] = useState<Schemas["NewKey"] | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function load() {
    const { data, error } = await api.GET("/v1/api-keys");
    if (data) setKeys(data.items);
    else setError(messageOf(error));
  }
  useEffect(() => {
    load();
  }, []);

  async function issue(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const fields = new FormData(form);
    const scopes = SCOPES.filter((scope) => fields.get(`scope-${scope}`) === "on");
    const { data, error } = await api.POST("/v1/api-keys", {
      body: { name: String(fields.get("name")), scopes },
    });
    if (!data) return setError(messageOf(error));
    setError(null);
    setShown(data);
    form.reset();
    load();
  }

  async function rotate(id: string) {
    const { data, error } = await api.POST("/v1/api-keys/{id}/rotate", { params: { path: { id } } });
    if (!data) return setError(messageOf(error));
    setShown(data);
    load();
  }

  async function revoke(id: string) {
    const { error } = await api.DELETE("/v1/api-keys/{id}", { params: { path: { id } } });
    if (error) return setError(messageOf(error));
    load();
  }

  return (
    <>
      <h1>{t("apiKeys")}</h1>
      <form class="card" onSubmit={issue} aria-labelledby="issue-title">
        <h2 id="issue-title">{t("issueKey")}</h2>
        <Field name="name" label={t("keyName")} />
        <fieldset>
          <legend>{t("scopes")}</legend>
          {SCOPES.map((scope) => (
            <label key={scope} class="check">
              <input type="checkbox" name={`scope-${scope}`} defaultChecked={scope !== "manage"} /> {scope}
            </label>
          ))}
        </fieldset>
        <button type="submit">{t("issueKey")}</button>
      </form>
      <Messages error={error} />
      {shown && (
        <section class="card shown" role="status" aria-labelledby="shown-title">
          <h2 id="shown-title">{t("keyShownOnce")}</h2>
          <code data-testid="new-key">{shown.key}</code>
        </section>
      )}
      <section class="card" aria-labelledby="keys-title">
        <h2 id="keys-title">{t("issuedKeys")}</h2>
        {keys === null ? (
          <p>{t("loading")}</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">{t("keyName")}</th>
                <th scope="col">{t("scopes")}</th>
                <th scope="col">{t("lastUsed")}</th>
                <th scope="col">
                  <span class="visually-hidden">{t("actions")}</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {keys.map((key) => (
                <tr key={key.id}>
                  <td>
                    {key.name} <small class="hint">rns_{key.id}_…</small>
                  </td>
                  <td>{key.scopes.join(", ")}</td>
                  <td>{key.last_used_at ?? "–"}</td>
                  <td>
                    <button type="button" class="secondary" onClick={() => rotate(key.id)}>
                      {t("rotate")}
                    </button>
                    <button type="button" class="danger" onClick={() => revoke(key.id)}>
                      {t("revoke")}
                    </button>
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
