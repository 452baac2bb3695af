// Schedules: every send waiting for its time or recurring, with its next firing,
// how it recurs, what a firing costs and how many fired; cancelling one returns the
// points it holds.
import { useState } from "preact/hooks";
import { api, messageOf, type Schemas } from "../api/client";
import { numbers, times } from "../format";
import { t, type Word } from "../i18n";
import { Listing, usePages } from "./listing";
import { Messages } from "./messages";
import { NamedButton } from "./named_button";

type Schedule = Schemas["ScheduleView"];

export function Schedules() {
  const [state, setState] = useState<"" | Schemas["ScheduleState"]>("scheduled");
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const schedules = usePages(
    (after) =>
      api.GET("/v1/schedules", {
        params: { query: { limit: 50, ...(state ? { state } : {}), ...(after ? { cursor: after } : {}) } },
      }),
    [state],
  );

  async function cancel(schedule: Schedule) {
    const { error } = await api.DELETE("/v1/schedules/{id}", { params: { path: { id: schedule.id } } });
    if (error) return setError(messageOf(error));
    setError(null);
    setNotice(t("scheduleCancelled"));
    schedules.reload();
  }

  const number = numbers();
  const clock = times();
  const at = (value?: string | null) => (value ? clock.format(new Date(value)) : "");

  return (
    <>
      <h1>{t("schedules")}</h1>
      <Messages error={error ?? schedules.error} notice={notice} />
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
        <Listing
          items={schedules.items}
          more={schedules.more}
          columns={[t("nextFiring"), t("recurrence"), t("recipients"), t("amount"), t("fired"), t("status"), t("actions")]}
        >
          {(schedule) => (
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
                  <NamedButton label={t("cancelSchedule")} name={at(schedule.next_fire_at ?? schedule.scheduled_at)} kind="danger" onClick={() => cancel(schedule)} />
                ) : (
                  at(schedule.cancelled_at)
                )}
              </td>
            </tr>
          )}
        </Listing>
      </section>
    </>
  );
}
