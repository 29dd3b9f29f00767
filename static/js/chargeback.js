// Services show without JavaScript; with it, each unit folds to one line.
document.querySelectorAll("[data-toggle-unit]").forEach(function (button) {
  var rows = button.closest("tbody").querySelectorAll(".service-row");
  function set(open) {
    rows.forEach(function (row) { row.hidden = !open; });
    button.setAttribute("aria-expanded", String(open));
    button.textContent = open ? "▾" : "▸";
    button.setAttribute("aria-label", (open ? "Hide" : "Show") + " services");
  }
  set(false);
  button.addEventListener("click", function () { set(button.getAttribute("aria-expanded") !== "true"); });
});
document.querySelectorAll("[data-collapse-all]").forEach(function (button) {
  button.addEventListener("click", function () {
    var table = button.closest("table");
    var open = button.textContent === "expand all";
    table.querySelectorAll("[data-toggle-unit]").forEach(function (b) {
      if ((b.getAttribute("aria-expanded") === "true") !== open) { b.click(); }
    });
    button.textContent = open ? "collapse all" : "expand all";
  });
  button.textContent = "expand all";
});
