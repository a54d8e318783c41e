// Progressive enhancement only: every page works without JavaScript.
//
// Loaded as <script type="module">, so browsers too old for ES modules skip it (and the
// template's js-enabled snippet leaves off "nhsuk-frontend-supported" for them).
// initAll() wires up the NHS.UK components present on the page (header menu, error
// summary focus, character count, details, radios/checkboxes conditional reveals…).
import { initAll } from "../dist/nhsuk-frontend.min.js";

initAll();

// "Copy receipt": shown only when the Clipboard API exists; without JavaScript the
// receipt can still be selected by hand or saved with the download link.
for (const button of document.querySelectorAll("[data-copy-target]")) {
  const target = document.getElementById(button.dataset.copyTarget);
  if (!target || !navigator.clipboard) continue;
  const wrapper = button.closest("[hidden]");
  if (wrapper) wrapper.hidden = false;
  const status = document.getElementById(`${button.dataset.copyTarget}-copy-status`);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(target.textContent.trim());
      if (status) status.textContent = "Receipt copied. Paste it somewhere only you can see.";
    } catch {
      if (status) status.textContent = "Could not copy. Select the receipt and copy it by hand.";
    }
  });
}
