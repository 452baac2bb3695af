// Contacts and groups: the groups with their sizes (one chosen narrows the list and
// receives imports), contacts found by number, memo or field, added or edited one at
// a time, and a CSV file imported a part at a time with a progress bar and every row
// that could not be imported, by its row in the file.
import { useEffect, useState } from "preact/hooks";
import { api, messageOf, type Schemas } from "../api/client";
import { csvParts } from "../csv";
import { numbers } from "../format";
import { t } from "../i18n";
import { Field } from "./field";
import { Listing, usePages } from "./listing";
import { Messages } from "./messages";
import { NamedButton } from "./named_button";

type Contact = Schemas["Contact"];
type Group = Schemas["GroupView"];

/** Rows sent to the API per import request. */
const IMPORT_PART_ROWS = 500;

type Progress = { done: number; total: number; created: number; updated: number; errors: Schemas["RowError"][] };

export function Contacts() {
  const [groups, setGroups] = useState<Group[]>([]);
  const [group, setGroup] = useState<string>("");
  const [query, setQuery] = useState("");
  const [editing, setEditing] = useState<Contact | null>(null);
  const [progress, setProgress] = useState<Progress | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  async function loadGroups() {
    const { data, error } = await api.GET("/v1/groups", { params: { query: { limit: 1000 } } });
    if (data) setGroups(data.items);
    else setError(messageOf(error));
  }

  const contacts = usePages(
    (after) =>
      api.GET("/v1/contacts", {
        params: {
          query: {
            limit: 50,
            ...(query ? { q: query } : {}),
            ...(group ? { group_id: group } : {}),
            ...(after ? { cursor: after } : {}),
          },
        },
      }),
    [group, query],
  );

  useEffect(() => {
    loadGroups();
  }, []);

  function done(message: string) {
    setError(null);
    setNotice(message);
    loadGroups();
    contacts.reload();
  }

  async function createGroup(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const name = String(new FormData(form).get("group-name"));
    const { data, error } = await api.POST("/v1/groups", { body: { name } });
    if (!data) return setError(messageOf(error));
    form.reset();
    setGroup(data.id);
    done(t("groupCreated", { name }));
  }

  async function addContact(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const values = new FormData(form);
    const name = String(values.get("contact-name") ?? "").trim();
    const { error } = await api.POST("/v1/contacts", {
      body: {
        number: String(values.get("contact-number")),
        memo: String(values.get("contact-memo") ?? ""),
        fields: name ? { name } : {},
        group_ids: group ? [group] : [],
      },
    });
    if (error) return setError(messageOf(error));
    form.reset();
    done(t("contactSaved"));
  }

  async function saveContact(event: Event) {
    event.preventDefault();
    if (!editing?.id) return;
    const values = new FormData(event.currentTarget as HTMLFormElement);
    const name = String(values.get("edit-name") ?? "").trim();
    const fields = { ...(editing.fields ?? {}) };
    if (name) fields.name = name;
    else delete fields.name;
    const { error } = await api.PATCH("/v1/contacts/{id}", {
      params: { path: { id: editing.id } },
      body: { number: String(values.get("edit-number")), memo: String(values.get("edit-memo") ?? ""), fields },
    });
    if (error) return setError(messageOf(error));
    setEditing(null);
    done(t("contactSaved"));
  }

  async function remove(contact: Contact) {
    if (!contact.id) return;
    const { error } = await api.DELETE("/v1/contacts/{id}", { params: { path: { id: contact.id } } });
    if (error) return setError(messageOf(error));
    done(t("contactRemoved", { number: contact.number }));
  }

  async function importFile(event: Event) {
    event.preventDefault();
    const file = (new FormData(event.currentTarget as HTMLFormElement).get("csv-file") as File | null) ?? null;
    if (!file || file.size === 0) return setError(t("chooseFile"));
    const parts = csvParts(await file.text(), IMPORT_PART_ROWS);
    const total = parts.reduce((sum, part) => sum + part.rows, 0);
    let shown: Progress = { done: 0, total, created: 0, updated: 0, errors: [] };
    setProgress(shown);
    setNotice(null);
    for (const part of parts) {
      const { data, error } = await api.POST("/v1/contacts/import", {
        params: { query: group ? { group_id: group } : {} },
        body: part.text,
        bodySerializer: (body: string) => body,
        headers: { "content-type": "text/csv" },
      });
      if (!data) return setError(messageOf(error));
      // The API numbers a part's rows from its own header: back to the file's rows.
      const errors = data.errors.map((row) => ({ row: part.firstRow + row.row - 2, error: row.error }));
      shown = {
        done: shown.done + part.rows,
        total,
        created: shown.created + data.created,
        updated: shown.updated + data.updated,
        errors: [...shown.errors, ...errors],
      };
      setProgress(shown);
    }
    done(t("imported", { created: String(shown.created), updated: String(shown.updated), failed: String(shown.errors.length) }));
  }

  const number = numbers();
  const chosen = groups.find((each) => each.id === group);

  return (
    <>
      <h1>{t("contacts")}</h1>
      <Messages error={error ?? contacts.error} notice={notice} />
      <section class="card" aria-labelledby="groups-title">
        <h2 id="groups-title">{t("groups")}</h2>
        <div class="field">
          <label for="group-choice">{t("group")}</label>
          <select id="group-choice" value={group} onChange={(event) => setGroup(event.currentTarget.value)}>
            <option value="">{t("allContacts")}</option>
            {groups.map((each) => (
              <option key={each.id} value={each.id}>
                {each.name} ({number.format(each.members)})
              </option>
            ))}
          </select>
        </div>
        <form class="inline" onSubmit={createGroup}>
          <label for="group-name">{t("newGroup")}</label>
          <input id="group-name" name="group-name" required maxLength={100} />
          <button type="submit">{t("createGroup")}</button>
        </form>
      </section>

      <section class="card" aria-labelledby="import-title">
        <h2 id="import-title">{t("importCsv")}</h2>
        <p class="hint" id="import-hint">
          {t("importHelp")} {chosen ? t("importIntoGroup", { name: chosen.name }) : ""}
        </p>
        <form class="inline" onSubmit={importFile}>
          <label for="csv-file">{t("csvFile")}</label>
          <input id="csv-file" name="csv-file" type="file" accept=".csv,text/csv" aria-describedby="import-hint" />
          <button type="submit">{t("import")}</button>
        </form>
        {progress && (
          <div class="import-progress">
            <label for="import-bar">{t("importProgress")}</label>
            <progress id="import-bar" max={Math.max(progress.total, 1)} value={progress.done} />
            <span>
              {number.format(progress.done)} / {number.format(progress.total)}
            </span>
            {progress.errors.length > 0 && (
              <table aria-label={t("rowErrors")}>
                <thead>
                  <tr>
                    <th scope="col">{t("row")}</th>
                    <th scope="col">{t("why")}</th>
                  </tr>
                </thead>
                <tbody>
                  {progress.errors.map((row) => (
                    <tr key={row.row}>
                      <td>{row.row}</td>
                      <td>{row.error}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </div>
        )}
      </section>

      <section class="card" aria-labelledby="add-title">
        <h2 id="add-title">{t("addContact")}</h2>
        <form onSubmit={addContact}>
          <Field name="contact-number" label={t("recipientNumber")} type="tel" placeholder="010-1234-5678" />
          <div class="field">
            <label for="contact-name">{t("name")}</label>
            <input id="contact-name" name="contact-name" maxLength={100} />
          </div>
          <div class="field">
            <label for="contact-memo">{t("memo")}</label>
            <input id="contact-memo" name="contact-memo" maxLength={200} />
          </div>
          <button type="submit">{t("save")}</button>
        </form>
      </section>

      <section class="card" aria-labelledby="list-title">
        <h2 id="list-title">{chosen ? chosen.name : t("allContacts")}</h2>
        <form
          class="inline"
          role="search"
          onSubmit={(event) => {
            event.preventDefault();
            setQuery(String(new FormData(event.currentTarget).get("contact-search") ?? "").trim());
          }}
        >
          <label for="contact-search">{t("search")}</label>
          <input id="contact-search" name="contact-search" type="search" class="wide" />
          <button type="submit" class="secondary">
            {t("search")}
          </button>
        </form>
        {editing && (
          <form class="card" onSubmit={saveContact} aria-labelledby="edit-title">
            <h3 id="edit-title">{t("editContact")}</h3>
            <div class="field">
              <label for="edit-number">{t("recipientNumber")}</label>
              <input id="edit-number" name="edit-number" defaultValue={editing.number} required />
            </div>
            <div class="field">
              <label for="edit-name">{t("name")}</label>
              <input id="edit-name" name="edit-name" defaultValue={editing.fields?.name ?? ""} />
            </div>
            <div class="field">
              <label for="edit-memo">{t("memo")}</label>
              <input id="edit-memo" name="edit-memo" defaultValue={editing.memo ?? ""} />
            </div>
            <button type="submit">{t("save")}</button>
            <button type="button" class="secondary" onClick={() => setEditing(null)}>
              {t("cancel")}
            </button>
          </form>
        )}
        <Listing items={contacts.items} more={contacts.more} columns={[t("recipientNumber"), t("name"), t("fields"), t("memo"), t("actions")]}>
          {(contact) => (
            <tr key={contact.id}>
              <td>{contact.number}</td>
              <td>{contact.fields?.name ?? ""}</td>
              <td>
                <small>
                  {Object.entries(contact.fields ?? {})
                    .filter(([name]) => name !== "name")
                    .map(([name, value]) => `${name}=${value}`)
                    .join(", ")}
                </small>
              </td>
              <td>{contact.memo ?? ""}</td>
              <td>
                <NamedButton label={t("edit")} name={contact.number} kind="secondary" onClick={() => setEditing(contact)} />
                <NamedButton label={t("delete")} name={contact.number} kind="danger" onClick={() => remove(contact)} />
              </td>
            </tr>
          )}
        </Listing>
      </section>
    </>
  );
}
