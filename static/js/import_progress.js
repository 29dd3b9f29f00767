// An import still running: poll its status and reload the page once it has finished.
(function () {
  var box = document.getElementById("progress");
  if (!box) { return; }
  function poll() {
    fetch(box.dataset.statusUrl, {credentials: "same-origin"}).then(function (r) { return r.json(); })
      .then(function (s) {
        document.getElementById("bar").value = s.progress;
        document.getElementById("stage").textContent = s.stage || s.status;
        if (s.finished) { window.location.reload(); } else { setTimeout(poll, 1000); }
      }).catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 500);
})();
