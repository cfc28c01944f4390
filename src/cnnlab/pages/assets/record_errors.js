window.__errors = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  __errors.push(t && t !== window && (t.src || t.href) ? "failed to load " + (t.src || t.href).slice(0, 80)
                                                         : String(e.message));
}, true);
window.addEventListener("unhandledrejection", function (e) { __errors.push("unhandled rejection: " + e.reason); });
(function () {
  var original = console.error;
  console.error = function () { __errors.push(Array.prototype.join.call(arguments, " ")); original.apply(console, arguments); };
})();
