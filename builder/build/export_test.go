package build

// PackageChanges is packageChanges, for the external tests.
var PackageChanges = packageChanges
