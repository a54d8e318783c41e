// Progressive enhancement only: every page works without JavaScript.
//
// Loaded as <script type="module">, so browsers too old for ES modules skip it (and the
// template's js-enabled snippet leaves off "nhsuk-frontend-supported" for them).
// initAll() wires up the NHS.UK components present on the page (header menu, error
// summary focus, character count, details, radios/checkboxes conditional reveals…).
import { initAll } from "../dist/nhsuk-frontend.min.js";

initAll();
