option task = {name: "all", every: 1h}
from(bucket: "telegraf")
    |> range(start: -task.every)
    |> filter(fn: (r) => r._measurement == "cpu" and r._field =~ /^usage_/)
    |> aggregateWindow(every: 1h, fn: mean)
    |> to(bucket: "rollups", org: "example")
