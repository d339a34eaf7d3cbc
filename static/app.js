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
});
