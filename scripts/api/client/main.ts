// A frontend's first steps, written against the client generated from /openapi.json:
// sign up, log in, start an organization, create and publish an event, find it by search.
// `tsc` type-checks it against the generated types (a renamed field or operation, a wrong
// type, an undeclared error shape all fail to compile); node then runs it against
// VECHE_URL, so the types are also checked against what the server sends.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

declare const process: { env: Record<string, string | undefined>; exitCode?: number };

type Problem = components["schemas"]["Problem"];
type EventInput = components["schemas"]["EventInput"];

const baseUrl = process.env["VECHE_URL"];
if (!baseUrl) throw new Error("set VECHE_URL");
const api = createClient<paths>({ baseUrl });

function fail(step: string, problem: Problem | undefined, status: number): never {
  throw new Error(`${step}: ${status} ${problem?.title ?? ""} ${problem?.detail ?? ""}`);
}

const run = Date.now().toString(36);
const email = `ts-client.${run}@example.org`;
const password = "correct horse battery staple";

const signedUp = await api.POST("/api/v1/auth/register", { body: { email, password, display_name: "TS Client" } });
if (!signedUp.data) fail("register", signedUp.error, signedUp.response.status);

const wrong = await api.POST("/api/v1/auth/login", { body: { email, password: "not the password at all" } });
// Errors are typed too: a problem document with a stable `type` URI.
if (wrong.data || !wrong.error.type.endsWith("/unauthorized")) throw new Error("a wrong password must be refused");

const login = await api.POST("/api/v1/auth/login", { body: { email, password } });
if (!login.data) fail("login", login.error, login.response.status);
const headers = { Authorization: `Bearer ${login.data.access_token}` };

const org = await api.POST("/api/v1/organizations", { headers, body: { name: `TS Client Club ${run}` } });
if (!org.data) fail("create organization", org.error, org.response.status);

const input: EventInput = {
  title: `Typed meetup ${run}`,
  start: "2031-05-01T16:00:00Z",
  end: "2031-05-01T18:00:00Z",
  time_zone: "Europe/Moscow",
  format: "online",
  online_url: "https://meet.example.org/typed",
  organization_id: org.data.id,
  tags: ["typescript"],
};
const created = await api.POST("/api/v1/events", { headers, body: input });
if (!created.data) fail("create event", created.error, created.response.status);
const id: string = created.data.id;

const published = await api.POST("/api/v1/events/{id}/publish", { headers, params: { path: { id } } });
if (!published.data) fail("publish", published.error, published.response.status);
if (published.data.status !== "published") throw new Error(`publish: status is ${published.data.status}`);

const found = await api.GET("/api/v1/events", { params: { query: { q: `typed meetup ${run}`, limit: 10 } } });
if (!found.data) fail("search", found.error, found.response.status);
if (!found.data.items.some((event) => event.id === id)) throw new Error(`search did not find event ${id}`);

console.log(`api client: signed up, logged in, created organization ${org.data.slug}, published and found event ${id}`);
