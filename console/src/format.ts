// Numbers and times as the chosen language writes them; times in Korea's zone.
import { language } from "./i18n";

function locale(): string {
  return language.value === "ko" ? "ko-KR" : "en-US";
}

export function numbers(): Intl.NumberFormat {
  return new Intl.NumberFormat(locale());
}

export function times(): Intl.DateTimeFormat {
  return new Intl.DateTimeFormat(locale(), {
    dateStyle: "short",
    timeStyle: "medium",
    timeZone: "Asia/Seoul",
  });
}
