option task = {name: "requests", every: 5m}

from(bucket: "web")
    |> range(start: -task.every)
    |> filter(fn: (r) => r._measurement == "nginx" and r._field == "status")
    |> aggregateWindow(every: task.every, fn: count)
    |> yield(name: "count")
    |> to(bucket: "rollups", org: "example")
