// The choice of a channel, SMS/LMS/MMS or AlimTalk, as radio buttons under a legend.
import type { Schemas } from "../api/client";
import { t, type Word } from "../i18n";

export function ChannelChoice(props: {
  name: string;
  channel: Schemas["Channel"];
  onChange: (channel: Schemas["Channel"]) => void;
  disabled?: boolean;
}) {
  return (
    <fieldset>
      <legend>{t("channel")}</legend>
      {(["sms", "alimtalk"] as const).map((each) => (
        <label class="check" key={each}>
          <input
            type="radio"
            name={props.name}
            value={each}
            checked={props.channel === each}
            disabled={props.disabled}
            onChange={() => props.onChange(each)}
          />{" "}
          {t(`channel_${each}` as Word)}
        </label>
      ))}
    </fieldset>
  );
}
