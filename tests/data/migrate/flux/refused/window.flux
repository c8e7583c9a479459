option task = {name: "windowed", every: 1h}
from(bucket: "telegraf")
    |> range(start: -task.every)
    |> filter(fn: (r) => r._measurement == "cpu" and r._field == "usage_idle")
    |> window(every: 1h)
    |> mean()
    |> to(bucket: "rollups", org: "example")
