// The company's people: who they are, an invitation link for someone new (shown
// once; it works once, for that email, within 7 days), and removing someone.
import { useEffect, useState } from "preact/hooks";
import { api, messageOf, type Schemas } from "../api/client";
import { t } from "../i18n";
import { Field } from "./field";
import { Messages } from "./messages";

export function Members({ session }: { session: Schemas["SessionView"] }) {
  const [people, setPeople] = useState<Schemas["MemberView"][] | null>(null);
  const [link, setLink] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function load() {
    const { data, error } = await api.GET("/v1/members");
    if (data) setPeople(data.items);
    else setError(messageOf(error));
  }
  useEffect(() => {
    load();
  }, []);

  async function invite(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const fields = new FormData(form);
    const role = fields.get("role") === "owner" ? "owner" : "member";
    const { data, error } = await api.POST("/v1/members/invitations", {
      body: { email: String(fields.get("email")), role },
    });
    if (!data) return setError(messageOf(error));
    setError(null);
    setLink(`${location.origin}${location.pathname}#/signup?invitation=${data.token}`);
    form.reset();
  }

  async function remove(id: string) {
    const { error } = await api.DELETE("/v1/members/{id}", { params: { path: { id } } });
    if (error) return setError(messageOf(error));
    load();
  }

  return (
    <>
      <h1>{t("members")}</h1>
      <form class="card" onSubmit={invite} aria-labelledby="invite-title">
        <h2 id="invite-title">{t("invite")}</h2>
        <Field name="email" label={t("email")} type="email" />
        <fieldset>
          <legend>{t("role")}</legend>
          <label class="check">
            <input type="radio" name="role" value="member" defaultChecked /> {t("role_member")}
          </label>
          <label class="check">
            <input type="radio" name="role" value="owner" /> {t("role_owner")}
          </label>
        </fieldset>
        <button type="submit">{t("invite")}</button>
      </form>
      <Messages error={error} />
      {link && (
        <section class="card shown" role="status" aria-labelledby="link-title">
          <h2 id="link-title">{t("invitationLink")}</h2>
          <code data-testid="invitation-link">{link}</code>
        </section>
      )}
      <section class="card" aria-labelledby="people-title">
        <h2 id="people-title">{t("people")}</h2>
        {people === null ? (
          <p>{t("loading")}</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">{t("name")}</th>
                <th scope="col">{t("email")}</th>
                <th scope="col">{t("role")}</th>
                <th scope="col">
                  <span class="visually-hidden">{t("actions")}</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {people.map((person) => (
                <tr key={person.id}>
                  <td>{person.name}</td>
                  <td>{person.email}</td>
                  <td>{t(person.role === "owner" ? "role_owner" : "role_member")}</td>
                  <td>
                    {person.id !== session.person.id && (
                      <button type="button" class="danger" onClick={() => remove(person.id)}>
                        {t("remove")}
                      </button>
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
