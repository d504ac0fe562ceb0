// Celeriac runs on Node and its public types use Node's (or those of clients that do): keep this
// reference in the .d.ts, since TypeScript 6 projects load no @types/* package unless asked.
/// <reference types="node" preserve="true" />
// For users: the generated handles' runtime, and the generator and checker behind `celeriac codegen`
// and `celeriac schema check`.
export { createTaskHandle, TypedAsyncResult, type TaskHandle } from "./handle.js";
export { SchemaValidationError, convertOrThrow, type Direction, type ConvertOptions } from "./convert.js";
export { loadSchema, type LoadSchemaOptions } from "./load.js";
export { generate, generateFromModel, generateToDir, type GenerateOptions, type GeneratedFile } from "./generate.js";
export { checkCompatibility, type SchemaCheckReport, type SchemaChange, type BreakingChangeKind } from "./check.js";
export { taskJsonSchemas, messageJsonSchema, type JsonSchema, type TaskJsonSchemas } from "./json-schema.js";
export type { SchemaModel, TaskModel, MessageModel, EnumModel, FieldModel, FieldType, FieldLabel, ScalarType, TaskOptionsModel } from "./model.js";
export { VERSION } from "./version.js";
