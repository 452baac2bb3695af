// A list the API gives a page at a time, as every page shows one: "loading", "none
// yet", or a table under its column headings, with "more" while there is a next page.
import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { messageOf } from "../api/client";
import { t } from "../i18n";

/** One page of a list, as the API answers it. */
type Answer<T> = { data?: { items: T[]; next_cursor?: string | null }; error?: unknown };

/**
 * The items of a paged list, newest page appended: `load(cursor)` fetches a page
 * (`null`: the first). Reloaded from the first page whenever `dependencies` change.
 */
export function usePages<T>(load: (cursor: string | null) => Promise<Answer<T>>, dependencies: unknown[] = []) {
  const [items, setItems] = useState<T[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function fetch(after: string | null) {
    const { data, error } = await load(after);
    if (!data) return setError(messageOf(error));
    setError(null);
    setItems((shown) => (after && shown ? [...shown, ...data.items] : data.items));
    setCursor(data.next_cursor ?? null);
  }
  useEffect(() => {
    fetch(null);
  }, dependencies);

  return {
    items,
    error,
    reload: () => fetch(null),
    more: cursor ? () => fetch(cursor) : null,
  };
}

export function Listing<T>(props: {
  items: T[] | null;
  columns: string[];
  children: (item: T) => ComponentChildren;
  more?: (() => void) | null;
  label?: string;
}) {
  const { items, more } = props;
  return (
    <>
      {items === null ? (
        <p>{t("loading")}</p>
      ) : items.length === 0 ? (
        <p>{t("none")}</p>
      ) : (
        <table aria-label={props.label}>
          <thead>
            <tr>
              {props.columns.map((column) => (
                <th scope="col" key={column}>
                  {column}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>{items.map((item) => props.children(item))}</tbody>
        </table>
      )}
      {more && (
        <button type="button" class="secondary" onClick={more}>
          {t("more")}
        </button>
      )}
    </>
  );
}
