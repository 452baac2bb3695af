// Templates: texts kept for reuse (SMS/LMS with a subject, or AlimTalk with the
// template code Kakao approved and its buttons), with the variables they name;
// written, changed and deleted here, picked on the send page.
import { useEffect, useState } from "preact/hooks";
import { api, messageOf, type Schemas } from "../api/client";
import { t, type Word } from "../i18n";
import { ChannelChoice } from "./channel_choice";
import { Listing } from "./listing";
import { Messages } from "./messages";
import { NamedButton } from "./named_button";

type Template = Schemas["TemplateView"];
type Button = Schemas["Button"];

const BUTTON_KINDS: Schemas["ButtonKind"][] = [
  "web_link",
  "app_link",
  "delivery_tracking",
  "bot_keyword",
  "message_forward",
  "add_channel",
];

export function Templates() {
  const [templates, setTemplates] = useState<Template[] | null>(null);
  const [editing, setEditing] = useState<Template | null>(null);
  const [channel, setChannel] = useState<Schemas["Channel"]>("sms");
  const [buttons, setButtons] = useState<Button[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  async function load() {
    const { data, error } = await api.GET("/v1/templates", { params: { query: { limit: 1000 } } });
    if (data) setTemplates(data.items);
    else setError(messageOf(error));
  }
  useEffect(() => {
    load();
  }, []);

  function edit(template: Template | null) {
    setEditing(template);
    setChannel(template?.channel ?? "sms");
    setButtons(template?.alimtalk?.buttons ?? []);
  }

  async function save(event: Event) {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const values = new FormData(form);
    const read = (name: string) => String(values.get(name) ?? "").trim();
    const body: Schemas["TemplateBody"] = {
      channel,
      name: read("template-name"),
      text: String(values.get("template-text") ?? ""),
      ...(channel === "sms" && read("template-subject") ? { subject: read("template-subject") } : {}),
      ...(channel === "alimtalk"
        ? { alimtalk: { template_code: read("template-code"), buttons: buttons.filter((button) => button.name.trim()) } }
        : {}),
    };
    const { error } = editing
      ? await api.PUT("/v1/templates/{id}", { params: { path: { id: editing.id } }, body })
      : await api.POST("/v1/templates", { body });
    if (error) return setError(messageOf(error));
    setError(null);
    setNotice(t("templateSaved", { name: body.name }));
    form.reset();
    edit(null);
    load();
  }

  async function remove(template: Template) {
    const { error } = await api.DELETE("/v1/templates/{id}", { params: { path: { id: template.id } } });
    if (error) return setError(messageOf(error));
    setNotice(t("templateDeleted", { name: template.name }));
    load();
  }

  function changeButton(index: number, change: Partial<Button>) {
    setButtons((shown) => shown.map((button, at) => (at === index ? { ...button, ...change } : button)));
  }

  return (
    <>
      <h1>{t("templates")}</h1>
      <Messages error={error} notice={notice} />
      <form class="card" onSubmit={save} key={editing?.id ?? "new"} aria-labelledby="template-form-title">
        <h2 id="template-form-title">{editing ? t("editTemplate") : t("newTemplate")}</h2>
        <ChannelChoice name="template-channel" channel={channel} onChange={setChannel} disabled={editing !== null} />
        <div class="field">
          <label for="template-name">{t("templateName")}</label>
          <input id="template-name" name="template-name" required maxLength={100} defaultValue={editing?.name ?? ""} />
        </div>
        {channel === "sms" ? (
          <div class="field">
            <label for="template-subject">{t("subject")}</label>
            <input id="template-subject" name="template-subject" defaultValue={editing?.subject ?? ""} />
          </div>
        ) : (
          <div class="field">
            <label for="template-code">{t("templateCode")}</label>
            <input
              id="template-code"
              name="template-code"
              required
              defaultValue={editing?.alimtalk?.template_code ?? ""}
            />
          </div>
        )}
        <div class="field">
          <label for="template-text">{t("text")}</label>
          <textarea
            id="template-text"
            name="template-text"
            rows={5}
            required
            aria-describedby="template-variables"
            defaultValue={editing?.text ?? ""}
          />
          <small id="template-variables" class="hint">
            {t("variablesHelp")}
          </small>
        </div>
        {channel === "alimtalk" && (
          <fieldset>
            <legend>{t("buttons")}</legend>
            {buttons.map((button, index) => (
              <div class="inline" key={index}>
                <label for={`button-kind-${index}`}>{t("buttonKind")}</label>
                <select
                  id={`button-kind-${index}`}
                  value={button.kind}
                  onChange={(event) => changeButton(index, { kind: event.currentTarget.value as Schemas["ButtonKind"] })}
                >
                  {BUTTON_KINDS.map((kind) => (
                    <option key={kind} value={kind}>
                      {kind}
                    </option>
                  ))}
                </select>
                <label for={`button-name-${index}`}>{t("buttonName")}</label>
                <input
                  id={`button-name-${index}`}
                  value={button.name}
                  onInput={(event) => changeButton(index, { name: event.currentTarget.value })}
                />
                <label for={`button-url-${index}`}>{t("buttonUrl")}</label>
                <input
                  id={`button-url-${index}`}
                  type="url"
                  class="wide"
                  value={button.url_mobile ?? ""}
                  onInput={(event) => changeButton(index, { url_mobile: event.currentTarget.value || null })}
                />
                <NamedButton
                  label={t("delete")}
                  name={button.name}
                  kind="link"
                  onClick={() => setButtons((shown) => shown.filter((_, at) => at !== index))}
                />
              </div>
            ))}
            <button
              type="button"
              class="secondary"
              disabled={buttons.length >= 5}
              onClick={() => setButtons((shown) => [...shown, { kind: "web_link", name: "" }])}
            >
              {t("addButton")}
            </button>
          </fieldset>
        )}
        <button type="submit">{t("save")}</button>
        {editing && (
          <button type="button" class="secondary" onClick={() => edit(null)}>
            {t("cancel")}
          </button>
        )}
      </form>
      <section class="card" aria-labelledby="templates-title">
        <h2 id="templates-title">{t("templateList")}</h2>
        <Listing items={templates} columns={[t("templateName"), t("channel"), t("text"), t("variables"), t("actions")]}>
          {(template) => (
            <tr key={template.id}>
              <td>{template.name}</td>
              <td>{t(`channel_${template.channel}` as Word)}</td>
              <td class="message-text">{template.text}</td>
              <td>{template.variables.join(", ")}</td>
              <td>
                <NamedButton label={t("edit")} name={template.name} kind="secondary" onClick={() => edit(template)} />
                <NamedButton label={t("delete")} name={template.name} kind="danger" onClick={() => remove(template)} />
              </td>
            </tr>
          )}
        </Listing>
      </section>
    </>
  );
}
