option task = {name: "dashboard", every: 1h}
from(bucket: "telegraf")
    |> range(start: -task.every)
    |> filter(fn: (r) => r._measurement == "cpu" and r._field == "usage_idle")
    |> aggregateWindow(every: 1h, fn: mean)
    |> yield()
