// Package stores opens a store by the driver name of the configuration
// (store.driver): the one place that names the drivers.
package stores
