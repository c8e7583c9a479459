option task = {name: "rates", every: 1h}
from(bucket: "telegraf")
    |> range(start: -task.every)
    |> filter(fn: (r) => r._measurement == "net" and r._field == "bytes_recv")
    |> derivative(unit: 1s)
    |> aggregateWindow(every: 1h, fn: mean)
    |> to(bucket: "rollups", org: "example")
