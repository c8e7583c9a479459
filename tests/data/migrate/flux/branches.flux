import "timezone"

option task = {name: "traffic-hourly", every: 1h, offset: 5m}
option location = timezone.location(name: "Europe/Zurich")

traffic = from(bucket: "telegraf")
    |> range(start: -2h)
    |> filter(fn: (r) => r._measurement == "interface")
    |> filter(fn: (r) => r._field == "ifHCInOctets" or r._field == "ifHCOutOctets")
    |> filter(fn: (r) => r["ifName"] == "xe-0/0/0" or r["ifName"] == "xe-0/0/1")
    |> derivative(unit: 1s, nonNegative: true, initialZero: true)
    |> map(fn: (r) => ({r with _value: r._value * 8.0}))
    |> group(columns: ["agent_host", "ifName", "_field", "_measurement"])

traffic
    |> aggregateWindow(every: 1h, fn: mean)
    |> set(key: "_measurement", value: "traffic_1h")
    |> to(bucket: "rollups", org: "example")

traffic
    |> aggregateWindow(every: 1h, fn: max)
    |> set(key: "_measurement", value: "traffic_1h_max")
    |> to(bucket: "rollups", org: "example")

traffic
    |> aggregateWindow(
        every: 1h,
        fn: (column, tables=<-) => tables |> quantile(q: 0.95, method: "exact_selector", column: column),
    )
    |> set(key: "_measurement", value: "traffic_1h_p95")
    |> to(bucket: "rollups", org: "example")
