option task = {name: "ratio", every: 1h}
errors = from(bucket: "web") |> range(start: -1h) |> filter(fn: (r) => r._measurement == "errors")
requests = from(bucket: "web") |> range(start: -1h) |> filter(fn: (r) => r._measurement == "requests")
join(tables: {errors: errors, requests: requests}, on: ["_time", "host"])
    |> aggregateWindow(every: 1h, fn: sum)
    |> to(bucket: "rollups")
