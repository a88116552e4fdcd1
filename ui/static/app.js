// Choosing another feature redraws its chart; the refresh box reloads the page.
document.addEventListener("DOMContentLoaded", () => {
  const chart = document.getElementById("chart-feature");
  if (chart) chart.addEventListener("change", () => chart.form.submit());
  const box = document.getElementById("auto-refresh");
  box.checked = sessionStorage.getItem("auto-refresh") === "1";
  box.addEventListener("change", () => sessionStorage.setItem("auto-refresh", box.checked ? "1" : "0"));
  setInterval(() => { if (box.checked) location.reload(); }, 10000);
});
