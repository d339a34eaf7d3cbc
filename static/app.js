// Small conveniences; every page works without JavaScript too. Nothing here submits a form by itself: a choice
// (a select, a radio) takes effect only when its form's button is pressed.
document.addEventListener("DOMContentLoaded", () => {
  // Destructive forms ask first.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  // A form posts once, even on a double click.
  for (const form of document.querySelectorAll("form[method=post]")) {
    form.addEventListener("submit", (event) => {
      if (event.defaultPrevented) return;
      for (const button of form.querySelectorAll("button")) button.disabled = true;
    });
  }
  // Where the keyboard is after an action. A form that failed names its field (autofocus): focused and scrolled into
  // view, the form in sight. Otherwise the page names the item acted on (main's data-focus), which is focused and
  // described by the message, so a screen reader says both; an item gone from the list (cancelled) leaves the
  // message itself to focus. Never the top of the page, tabs away from where the reader was.
  const field = document.querySelector("main [autofocus]");
  const main = document.querySelector("main[data-focus]");
  const message = document.getElementById("message");
  let target = field;
  if (!target && main) {
    target = document.getElementById(main.dataset.focus) || message;
    if (target && message && target !== message) target.setAttribute("aria-describedby", "message");
  }
  if (target) {
    target.focus({ preventScroll: true });
    target.scrollIntoView({ block: "center" });
  }
});
