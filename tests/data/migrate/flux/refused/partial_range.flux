option task = {name: "rolling", every: 1h}
from(bucket: "telegraf")
    |> range(start: -1h)
    |> filter(fn: (r) => r._measurement == "cpu" and r._field == "usage_idle")
    |> aggregateWindow(every: 1d, fn: mean)
    |> to(bucket: "rollups", org: "example")
