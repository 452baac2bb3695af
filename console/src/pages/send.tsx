// Sending: SMS/LMS/MMS or AlimTalk from a verified number, to numbers typed in and
// contact groups, now, once later or on a recurrence. While it is written the page
// asks the API what the send would do (POST /v1/messages/preview): the EUC-KR bytes
// and the type they make, the price against the balance, the de-duplicated recipient
// count, the first recipients' filled texts and the next firings — so every rule is
// the API's own, none copied here. A confidential send (one-time codes) is delivered
// as written and recorded as `[withheld]`.
import { useEffect, useState } from "preact/hooks";
import { api, messageOf, type Schemas } from "../api/client";
import { recipientsFromCsv } from "../csv";
import { numbers, times } from "../format";
import { t, type Word } from "../i18n";
import { ChannelChoice } from "./channel_choice";
import { Messages } from "./messages";

type Body = Schemas["SendMessages"];
type Preview = Schemas["SendPreview"];
type When = "now" | "once" | "recurring";
type Frequency = "daily" | "weekly" | "monthly";

const WEEKDAYS = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"] as const;

/** The six-field cron (second minute hour day month weekday) the builder means. */
export function cronOf(frequency: Frequency, time: string, weekday: string, day: number): string {
  const [hour, minute] = time.split(":").map((part) => Number(part) || 0);
  if (frequency === "weekly") return `0 ${minute} ${hour} * * ${weekday}`;
  if (frequency === "monthly") return `0 ${minute} ${hour} ${day} * *`;
  return `0 ${minute} ${hour} * * *`;
}

/** The numbers typed in: one per line or separated by commas. */
function typedNumbers(text: string): string[] {
  return text
    .split(/[\n,;]/)
    .map((number) => number.trim())
    .filter(Boolean);
}

async function base64(file: File): Promise<string> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = "";
  for (let index = 0; index < bytes.length; index += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(index, index + 0x8000));
  }
  return btoa(binary);
}

export function Send() {
  const [senders, setSenders] = useState<Schemas["SenderNumberView"][] | null>(null);
  const [groups, setGroups] = useState<Schemas["GroupView"][]>([]);
  const [templates, setTemplates] = useState<Schemas["TemplateView"][]>([]);
  const [channel, setChannel] = useState<"sms" | "alimtalk">("sms");
  const [from, setFrom] = useState("");
  const [text, setText] = useState("");
  const [subject, setSubject] = useState("");
  const [templateId, setTemplateId] = useState("");
  const [fallback, setFallback] = useState("");
  const [to, setTo] = useState("");
  const [personal, setPersonal] = useState("");
  const [chosenGroups, setChosenGroups] = useState<string[]>([]);
  const [images, setImages] = useState<string[]>([]);
  const [advertisement, setAdvertisement] = useState(false);
  const [confidential, setConfidential] = useState(false);
  const [priority, setPriority] = useState<"" | Schemas["Priority"]>("");
  const [when, setWhen] = useState<When>("now");
  const [at, setAt] = useState("");
  const [frequency, setFrequency] = useState<Frequency>("daily");
  const [time, setTime] = useState("09:00");
  const [weekday, setWeekday] = useState<string>("MON");
  const [day, setDay] = useState(1);
  const [preview, setPreview] = useState<Preview | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [sent, setSent] = useState<Schemas["SendAnswer"] | null>(null);
  const [sending, setSending] = useState(false);

  useEffect(() => {
    Promise.all([
      api.GET("/v1/sender-numbers", { params: { query: { limit: 1000 } } }),
      api.GET("/v1/groups", { params: { query: { limit: 1000 } } }),
      api.GET("/v1/templates", { params: { query: { limit: 1000 } } }),
    ]).then(([numbers, groupPage, templatePage]) => {
      const verified = (numbers.data?.items ?? []).filter((number) => number.status === "verified");
      setSenders(verified);
      setFrom((current) => current || verified[0]?.number || "");
      setGroups(groupPage.data?.items ?? []);
      setTemplates(templatePage.data?.items ?? []);
      const failed = [numbers, groupPage, templatePage].find((answer) => answer.error);
      if (failed) setError(messageOf(failed.error));
    });
  }, []);

  const cron = cronOf(frequency, time, weekday, day);

  function body(): Body {
    const sending: Body = {
      from,
      channel,
      to: typedNumbers(to),
      recipients: recipientsFromCsv(personal),
      groups: chosenGroups,
      advertisement,
      ...(confidential ? { confidential } : {}),
      ...(priority ? { priority } : {}),
    };
    if (channel === "alimtalk") {
      sending.template_id = templateId || null;
      if (fallback.trim()) sending.fallback = { text: fallback };
    } else {
      sending.text = text;
      if (subject.trim()) sending.subject = subject;
      if (images.length) sending.images = images.map((data) => ({ data }));
    }
    if (when === "once" && at) sending.scheduled_at = `${at}:00+09:00`;
    if (when === "recurring") sending.recurrence = { cron, timezone: "Asia/Seoul" };
    return sending;
  }
  const request = JSON.stringify(body());

  // What the send would do, asked a moment after the last change.
  useEffect(() => {
    if (!from) return;
    const asked = JSON.parse(request) as Body;
    const timer = setTimeout(async () => {
      const { data, error } = await api.POST("/v1/messages/preview", { body: asked });
      setPreview(data ?? null);
      setProblem(data ? null : messageOf(error));
    }, 250);
    return () => clearTimeout(timer);
  }, [request]);

  async function submit(event: Event) {
    event.preventDefault();
    setSending(true);
    const { data, error } = await api.POST("/v1/messages", { body: JSON.parse(request) as Body });
    setSending(false);
    setSent(data ?? null);
    setError(data ? null : messageOf(error));
  }

  function pickTemplate(id: string) {
    setTemplateId(id);
    const template = templates.find((each) => each.id === id);
    if (template && channel === "sms") {
      setText(template.text);
      setSubject(template.subject ?? "");
    }
  }

  async function pickImages(event: Event) {
    const files = Array.from((event.currentTarget as HTMLInputElement).files ?? []);
    setImages(await Promise.all(files.map(base64)));
  }

  const number = numbers();
  const clock = times();
  if (senders === null) return <p>{t("loading")}</p>;
  if (senders.length === 0) {
    return (
      <>
        <h1>{t("send")}</h1>
        <p>
          {t("needSender")} <a href="#/sender-numbers">{t("senderNumbers")}</a>
        </p>
      </>
    );
  }
  const channelTemplates = templates.filter((template) => template.channel === channel);
  const sendable = preview !== null && problem === null && preview.recipients > 0 && preview.enough_points;

  return (
    <>
      <h1>{t("send")}</h1>
      <form class="send" onSubmit={submit}>
        <section class="card" aria-labelledby="content-title">
          <h2 id="content-title">{t("content")}</h2>
          <ChannelChoice
            name="channel"
            channel={channel}
            onChange={(each) => {
              setChannel(each);
              setTemplateId("");
            }}
          />
          <div class="field">
            <label for="send-from">{t("senderNumber")}</label>
            <select id="send-from" value={from} onChange={(event) => setFrom(event.currentTarget.value)}>
              {senders.map((sender) => (
                <option key={sender.number} value={sender.number}>
                  {sender.number}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="send-template">{t("template")}</label>
            <select id="send-template" value={templateId} onChange={(event) => pickTemplate(event.currentTarget.value)}>
              <option value="">{channel === "sms" ? t("noTemplate") : t("chooseTemplate")}</option>
              {channelTemplates.map((template) => (
                <option key={template.id} value={template.id}>
                  {template.name}
                </option>
              ))}
            </select>
          </div>
          {channel === "sms" ? (
            <>
              <div class="field">
                <label for="send-subject">{t("subject")}</label>
                <input id="send-subject" value={subject} onInput={(event) => setSubject(event.currentTarget.value)} />
              </div>
              <div class="field">
                <label for="send-text">{t("text")}</label>
                <textarea
                  id="send-text"
                  rows={6}
                  value={text}
                  aria-describedby="send-bytes send-variables"
                  onInput={(event) => setText(event.currentTarget.value)}
                />
                <small id="send-bytes" class="hint" data-testid="bytes">
                  {preview
                    ? t("bytesOf", {
                        bytes: number.format(preview.bytes),
                        max: number.format(preview.type === "sms" ? preview.sms_max_bytes : preview.lms_max_bytes),
                        type: preview.type.toUpperCase(),
                      })
                    : ""}
                </small>
                <small id="send-variables" class="hint">
                  {t("variablesHelp")}
                </small>
              </div>
              <div class="field">
                <label for="send-images">{t("images")}</label>
                <input id="send-images" type="file" accept="image/jpeg" multiple onChange={pickImages} />
              </div>
            </>
          ) : (
            <div class="field">
              <label for="send-fallback">{t("fallbackText")}</label>
              <textarea
                id="send-fallback"
                rows={3}
                value={fallback}
                aria-describedby="fallback-hint"
                onInput={(event) => setFallback(event.currentTarget.value)}
              />
              <small id="fallback-hint" class="hint">
                {t("fallbackHelp")}
              </small>
            </div>
          )}
          <label class="check">
            <input
              type="checkbox"
              checked={advertisement}
              onChange={(event) => setAdvertisement(event.currentTarget.checked)}
            />{" "}
            {t("advertisement")}
          </label>
          <p class="hint">{t("advertisementHelp")}</p>
          <label class="check">
            <input
              type="checkbox"
              checked={confidential}
              aria-describedby="send-confidential-hint"
              onChange={(event) => setConfidential(event.currentTarget.checked)}
            />{" "}
            {t("confidential")}
          </label>
          <p id="send-confidential-hint" class="hint">
            {t("confidentialHelp")}
          </p>
        </section>

        <section class="card" aria-labelledby="recipients-title">
          <h2 id="recipients-title">{t("recipients")}</h2>
          <div class="field">
            <label for="send-to">{t("typedNumbers")}</label>
            <textarea id="send-to" rows={3} value={to} onInput={(event) => setTo(event.currentTarget.value)} />
          </div>
          <div class="field">
            <label for="send-personal">{t("personalRecipients")}</label>
            <textarea
              id="send-personal"
              rows={3}
              value={personal}
              placeholder={"number,name\n010-1234-5678,김민수"}
              aria-describedby="send-personal-hint"
              onInput={(event) => setPersonal(event.currentTarget.value)}
            />
            <small id="send-personal-hint" class="hint">
              {t("personalHelp")}
            </small>
          </div>
          <fieldset>
            <legend>{t("groups")}</legend>
            {groups.length === 0 && <p class="hint">{t("none")}</p>}
            {groups.map((group) => (
              <label class="check" key={group.id}>
                <input
                  type="checkbox"
                  checked={chosenGroups.includes(group.id)}
                  onChange={(event) =>
                    setChosenGroups((chosen) =>
                      event.currentTarget.checked ? [...chosen, group.id] : chosen.filter((id) => id !== group.id),
                    )
                  }
                />{" "}
                {group.name} ({number.format(group.members)})
              </label>
            ))}
          </fieldset>
        </section>

        <section class="card" aria-labelledby="when-title">
          <h2 id="when-title">{t("whenToSend")}</h2>
          <fieldset>
            <legend>{t("whenToSend")}</legend>
            {(["now", "once", "recurring"] as const).map((each) => (
              <label class="check" key={each}>
                <input type="radio" name="when" checked={when === each} onChange={() => setWhen(each)} />{" "}
                {t(`when_${each}` as Word)}
              </label>
            ))}
          </fieldset>
          {when === "once" && (
            <div class="field">
              <label for="send-at">{t("sendAt")}</label>
              <input id="send-at" type="datetime-local" value={at} onInput={(event) => setAt(event.currentTarget.value)} />
            </div>
          )}
          {when === "recurring" && (
            <div class="inline">
              <label for="send-frequency">{t("frequency")}</label>
              <select
                id="send-frequency"
                value={frequency}
                onChange={(event) => setFrequency(event.currentTarget.value as Frequency)}
              >
                {(["daily", "weekly", "monthly"] as const).map((each) => (
                  <option key={each} value={each}>
                    {t(`frequency_${each}` as Word)}
                  </option>
                ))}
              </select>
              {frequency === "weekly" && (
                <>
                  <label for="send-weekday">{t("weekday")}</label>
                  <select id="send-weekday" value={weekday} onChange={(event) => setWeekday(event.currentTarget.value)}>
                    {WEEKDAYS.map((each) => (
                      <option key={each} value={each}>
                        {t(`weekday_${each}` as Word)}
                      </option>
                    ))}
                  </select>
                </>
              )}
              {frequency === "monthly" && (
                <>
                  <label for="send-day">{t("dayOfMonth")}</label>
                  <input
                    id="send-day"
                    type="number"
                    min={1}
                    max={28}
                    value={day}
                    onInput={(event) => setDay(Number(event.currentTarget.value) || 1)}
                  />
                </>
              )}
              <label for="send-time">{t("timeOfDay")}</label>
              <input id="send-time" type="time" value={time} onInput={(event) => setTime(event.currentTarget.value)} />
              <code>{cron}</code>
            </div>
          )}
          <div class="field">
            <label for="send-priority">{t("priority")}</label>
            <select
              id="send-priority"
              value={priority}
              onChange={(event) => setPriority(event.currentTarget.value as "" | Schemas["Priority"])}
            >
              <option value="">{t("priority_auto")}</option>
              {(["high", "normal", "bulk"] as const).map((each) => (
                <option key={each} value={each}>
                  {t(`priority_${each}` as Word)}
                </option>
              ))}
            </select>
          </div>
        </section>

        <section class="card" aria-labelledby="preview-title" aria-live="polite">
          <h2 id="preview-title">{t("preview")}</h2>
          {problem && <p class="error">{problem}</p>}
          {preview && !problem && (
            <>
              <p data-testid="preview-summary">
                {t("previewSummary", {
                  recipients: number.format(preview.recipients),
                  type: preview.type.toUpperCase(),
                  points: number.format(preview.points),
                  balance: number.format(preview.balance),
                })}
                {preview.blocked.length > 0 && ` ${t("blockedCount", { count: String(preview.blocked.length) })}`}
                {preview.skipped.length > 0 && ` ${t("skippedCount", { count: String(preview.skipped.length) })}`}
              </p>
              {!preview.enough_points && <p class="error">{t("notEnoughPoints")}</p>}
              {preview.held_until && <p>{t("heldUntil", { at: clock.format(new Date(preview.held_until)) })}</p>}
              {preview.next_firings.length > 0 && (
                <>
                  <h3>{t("nextFirings")}</h3>
                  <ul data-testid="next-firings">
                    {preview.next_firings.map((firing) => (
                      <li key={firing}>{clock.format(new Date(firing))}</li>
                    ))}
                  </ul>
                </>
              )}
              {preview.first.length > 0 && (
                <table aria-label={t("firstRecipients")}>
                  <thead>
                    <tr>
                      <th scope="col">{t("recipientNumber")}</th>
                      <th scope="col">{t("type")}</th>
                      <th scope="col">{t("text")}</th>
                    </tr>
                  </thead>
                  <tbody>
                    {preview.first.map((message) => (
                      <tr key={message.to}>
                        <td>{message.to}</td>
                        <td>{message.type.toUpperCase()}</td>
                        <td class="message-text">{message.text}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </>
          )}
          <button type="submit" disabled={!sendable || sending}>
            {when === "now" ? t("sendNow") : t("schedule")}
          </button>
        </section>
      </form>
      <Messages error={error} />
      {sent && (
        <p role="status" data-testid="sent">
          {"request_id" in sent ? (
            <>
              {t("accepted", { count: number.format(sent.recipients) })}{" "}
              <a href={`#/results?request=${sent.request_id}`}>{t("seeResults")}</a>
            </>
          ) : (
            <>
              {t("scheduledRecurring")} <a href="#/schedules">{t("schedules")}</a>
            </>
          )}
        </p>
      )}
    </>
  );
}
