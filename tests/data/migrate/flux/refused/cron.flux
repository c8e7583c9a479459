option task = {name: "nightly", cron: "0 1 * * *"}
from(bucket: "telegraf")
    |> range(start: -1d)
    |> filter(fn: (r) => r._measurement == "cpu" and r._field == "usage_idle")
    |> aggregateWindow(every: 1d, fn: mean)
    |> to(bucket: "rollups", org: "example")
