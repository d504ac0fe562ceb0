// tasks.ts: shared by producer and worker: names and types, no implementation
import { defineTask } from "@celeriac/core";

export const add = defineTask<[number, number], number>("tasks.add");
