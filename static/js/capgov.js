// Behaviour every page may use, declared in the markup (the CSP allows no inline handlers):
//   <select data-autosubmit>        submits its form when the choice changes;
//   <form data-confirm="Question?"> asks before it is submitted.
document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
  select.addEventListener("change", function () { select.form.submit(); });
});
document.querySelectorAll("form[data-confirm]").forEach(function (form) {
  form.addEventListener("submit", function (event) {
    if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
  });
});
