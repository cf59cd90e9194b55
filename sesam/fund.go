package sesam

// French names a fund as the practitioner's billing software does: "CPAM
// n° 422 (régime général)". The caisse number stays as in the address.
func (f Fund) French() string {
	name, regime := f.frenchParts()
	if regime == "" {
		return name
	}
	return name + " (" + regime + ")"
}

// frenchParts are the fund's name and its regime: "CPAM n° 422",
// "régime général"; the regime may be empty.
func (f Fund) frenchParts() (name, regime string) {
	switch f.Regime {
	case "01":
		return "CPAM n° " + f.Caisse, "régime général"
	case "02":
		return "MSA n° " + f.Caisse, "régime agricole"
	case "03":
		// The RSI was merged into the régime général in 2020; its code
		// still appears in old configurations.
		return "RSI n° " + f.Caisse, "indépendants"
	case "91":
		return "MGEN n° " + f.Caisse, ""
	}
	return "caisse n° " + f.Caisse, "régime " + f.Regime
}
