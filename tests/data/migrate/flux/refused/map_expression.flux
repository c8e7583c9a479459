option task = {name: "total", every: 1h}
from(bucket: "telegraf")
    |> range(start: -task.every)
    |> filter(fn: (r) => r._measurement == "mem" and r._field == "used")
    |> map(fn: (r) => ({r with _value: r._value + 100.0}))
    |> aggregateWindow(every: 1h, fn: mean)
    |> to(bucket: "rollups", org: "example")
