// The console's one way to the API: the typed client generated from the gateway's
// OpenAPI document (`npm run api`), so a change of the contract breaks the build.
// Calls go to the same origin with the session cookie; every change carries the
// session's CSRF token.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];

let csrfToken: string | null = null;

/** Remembers the CSRF token of the session the console holds (none when signed out). */
export function useCsrfToken(token: string | null) {
  csrfToken = token;
}

const csrf: Middleware = {
  onRequest({ request }) {
    if (csrfToken && request.method !== "GET" && request.method !== "HEAD") {
      request.headers.set("X-CSRF-Token", csrfToken);
    }
    return request;
  },
};

export const api = createClient<paths>({ baseUrl: "", credentials: "same-origin" });
api.use(csrf);

/** The API's error shape. */
export type ApiError = { error: { code: string; message: string } };

/** The message of an error answer, or of a failure to reach the API. */
export function messageOf(error: unknown): string {
  if (error && typeof error === "object" && "error" in error) {
    const body = (error as ApiError).error;
    if (body && typeof body.message === "string") return body.message;
  }
  return String(error);
}

let operatorKey: string | null = null;

/** Remembers the operator key for this tab (in memory only: a reload forgets it). */
export function useOperatorKey(key: string | null) {
  operatorKey = key;
}

export function hasOperatorKey(): boolean {
  return operatorKey !== null;
}

/**
 * The operator's client: the same API with the operator key as the bearer, and
 * without the session cookie, so an operator's call is never a customer's.
 */
export const operatorApi = createClient<paths>({ baseUrl: "", credentials: "omit" });
operatorApi.use({
  onRequest({ request }) {
    if (operatorKey) request.headers.set("Authorization", `Bearer ${operatorKey}`);
    return request;
  },
});
