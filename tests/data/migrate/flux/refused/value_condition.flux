option task = {name: "busy", every: 1h}
from(bucket: "telegraf")
    |> range(start: -task.every)
    |> filter(fn: (r) => r._measurement == "cpu" and r._field == "usage_idle" and r._value < 10.0)
    |> aggregateWindow(every: 1h, fn: count)
    |> to(bucket: "rollups", org: "example")
