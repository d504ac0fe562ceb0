import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["**/dist/**", "**/node_modules/**", "**/src/gen/**"] },
  ...tseslint.configs.recommended,
  {
    // Type information for the rules below: each file is checked with its package's tsconfig.json.
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      // A promise nobody awaits or catches loses its error (an unhandled rejection ends the process).
      "@typescript-eslint/no-floating-promises": "error",
      // An async function where a void callback is expected (event handlers, forEach) drops its errors.
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/await-thenable": "error",
      // Inside try, `return promise` without await skips the catch and finally of that try.
      "@typescript-eslint/return-await": ["error", "in-try-catch"],
      "@typescript-eslint/only-throw-error": "error",
      // A switch over a union must name every member, so a new member is a compile-time TODO list.
      "@typescript-eslint/switch-exhaustiveness-check": ["error", { considerDefaultExhaustiveForUnions: true }],
    },
  },
  {
    // Plain JavaScript (fixtures, scripts) is in no tsconfig: lint it without type information.
    files: ["**/*.js", "**/*.mjs", "**/*.cjs"],
    ...tseslint.configs.disableTypeChecked,
  },
);
