/** What every in-process controller gives its starter (controllers/index.ts). */
export interface Controller {
  stop(): Promise<void>;
}
