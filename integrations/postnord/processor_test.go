package postnord_test

import (
	"github.com/orderflow/orderflow/integrations/postnord"
	"github.com/orderflow/orderflow/processor"
)

var (
	_ processor.Shipping       = (*postnord.Client)(nil)
	_ processor.ShipmentFinder = (*postnord.Client)(nil)
)
