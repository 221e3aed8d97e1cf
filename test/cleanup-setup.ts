// Runs in every test file (vitest setupFiles): the temp folders a file made are removed when its tests are done, so
// a full run does not leave gigabytes of disk images behind in the system temp folder.
import { afterAll } from "vitest";
import { removeTmpdirs } from "./helpers.ts";

afterAll(() => removeTmpdirs());
