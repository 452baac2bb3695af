// Schedules: every send waiting for its time or recurring, with its next firing,
// how it recurs, what a firing costs and how many fired; cancelling one returns the
// points it holds.
import { useEffect, useState } from "preact/hooks";
import { api, messageOf, type Schemas } from "../api/client";
import { numbers, times } from "../format";
import { t, type Word } from "../i18n";
import { Messages } from "./messages";

type Schedule = Schemas["ScheduleView"];

export function Schedules() {
  const [schedules, setSchedules] = useState<Schedule[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [state, setState] = useState<"" | Schemas["ScheduleState"]>("scheduled");
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  async function load(after: string | null) {
    const { data, error } = await api.GET("/v1/schedules", {
      params: { query: { limit: 50, ...(state ? { state } : {}), ...(after ? { cursor: after } : {}) } },
    });
    if (!data) return setError(messageOf(error));
    setSchedules((shown) => (after && shown ? [...shown, ...data.items] : data.items));
    setCursor(data.next_cursor ?? null);
  }
  useEffect(() => {
    load(null);
  }, [state]);

  async function cancel(schedule: Schedule) {
    const { error } = await api.DELETE("/v1/schedules/{id}", { params: { path: { id: schedule.id } } });
    if (error) return setError(messageOf(error));
    setError(null);
    setNotice(t("scheduleCancelled"));
    load(null);
  }

  const number = numbers();
  const clock = times();
  const at = (value?: string | null) => (value ? clock.format(new Date(value)) : "");

  return (
    <>
      <h1>{t("schedules")}</h1>
      <Messages error={error} notice={notice} />
      <section class="card" aria-labelledby="schedules-title">
        <h2 id="schedules-title">{t("scheduleList")}</h2>
        <div class="field">
          <label for="schedule-state">{t("status")}</label>
          <select id="schedule-state" value={state} onChange={(event) => setState(event.currentTarget.value as typeof state)}>
            <option value="">{t("any")}</option>
            {(["scheduled", "running", "done", "cancelled"] as const).map((each) => (
              <option key={each} value={each}>
                {t(`schedule_${each}` as Word)}
              </option>
            ))}
          </select>
        </div>
        {schedules === null ? (
          <p>{t("loading")}</p>
        ) : schedules.length === 0 ? (
          <p>{t("none")}</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">{t("nextFiring")}</th>
                <th scope="col">{t("recurrence")}</th>
                <th scope="col">{t("recipients")}</th>
                <th scope="col">{t("amount")}</th>
                <th scope="col">{t("fired")}</th>
                <th scope="col">{t("status")}</th>
                <th scope="col">{t("actions")}</th>
              </tr>
            </thead>
            <tbody>
              {schedules.map((schedule) => (
                <tr key={schedule.id}>
                  <td>{at(schedule.next_fire_at ?? schedule.scheduled_at)}</td>
                  <td>
                    {schedule.recurrence ? (
                      <code>{schedule.recurrence.cron ?? `${schedule.recurrence.every_seconds}s`}</code>
                    ) : (
                      t("when_once")
                    )}
                  </td>
                  <td>{number.format(schedule.recipients)}</td>
                  <td>{number.format(schedule.points)}</td>
                  <td>
                    {number.format(schedule.fires)}
                    {schedule.failed_fires > 0 && ` (${t("failed")} ${number.format(schedule.failed_fires)})`}
                  </td>
                  <td>{t(`schedule_${schedule.state}` as Word)}</td>
                  <td>
                    {schedule.state === "scheduled" || schedule.state === "running" ? (
                      <button type="button" class="danger" onClick={() => cancel(schedule)}>
                        {t("cancelSchedule")}
                        <span class="visually-hidden"> {at(schedule.next_fire_at ?? schedule.scheduled_at)}</span>
                      </button>
                    ) : (
                      at(schedule.cancelled_at)
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {cursor && (
          <button type="button" class="secondary" onClick={() => load(cursor)}>
            {t("more")}
          </button>
        )}
      </section>
    </>
  );
}
