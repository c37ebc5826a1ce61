/**
 * Scripted servers and clients for one test file, all closed after each test, and a helper to catch
 * the error a call rejects with.
 */
import { afterEach } from "vitest";
import { BatonClient, type BatonError } from "../../../client/index.js";
import { ScriptedServer, type Action, type SeenRequest } from "./scripted-server.js";

/** Fast retries, so scripted failures do not make tests slow. */
const FAST = { backoff: { baseMs: 1, maxMs: 5 }, timeoutMs: 2000 };

export interface ScriptedSession {
  serve(script: (request: SeenRequest, index: number) => Action): Promise<ScriptedServer>;
  /** A client with fast retries unless `options` say otherwise. */
  client(options: ConstructorParameters<typeof BatonClient>[0]): BatonClient;
}

/** Registers the clean-up: call at the top of a test file. */
export function useScriptedSession(): ScriptedSession {
  let servers: ScriptedServer[] = [];
  let clients: BatonClient[] = [];
  afterEach(async () => {
    for (const c of clients) c.close();
    await Promise.all(servers.map((server) => server.close()));
    servers = [];
    clients = [];
  });
  return {
    async serve(script) {
      const server = await ScriptedServer.start(script);
      servers.push(server);
      return server;
    },
    client(options) {
      const created = new BatonClient({ ...FAST, ...options });
      clients.push(created);
      return created;
    },
  };
}

export async function rejection(promise: Promise<unknown>): Promise<BatonError> {
  try {
    await promise;
  } catch (error) {
    return error as BatonError;
  }
  throw new Error("expected a rejection");
}
